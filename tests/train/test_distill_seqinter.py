"""Seq-Inter (Kim & Rush 2016): the teacher candidate closest to the real continuation by sentence BLEU."""
import math

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig
from tinyml.train.distill.seqinter import reference_windows, sentence_bleu, seq_inter_sequences

import tinyml


def test_sentence_bleu_is_one_for_a_copy_and_follows_the_smoothed_formula():
    assert sentence_bleu([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    # candidate 1 2 9 9 against 1 2 3 4: matches 2/4 unigrams, 1/3 bigrams, 0/2 trigrams, 0/1 4-grams
    want = math.exp((math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3) + math.log(1 / 2)) / 4)
    assert sentence_bleu([1, 2, 9, 9], [1, 2, 3, 4]) == pytest.approx(want)
    short = sentence_bleu([1, 2], [1, 2, 3, 4])  # brevity penalty exp(1 - 4/2)
    assert short < sentence_bleu([1, 2, 3, 4], [1, 2, 3, 4]) and sentence_bleu([], [1]) == 0.0


def test_reference_windows_are_contiguous_slices_of_the_text():
    ids = np.arange(100)
    prompts, refs = reference_windows(ids, n=6, prompt_len=3, new_tokens=5, seed=0)
    assert prompts.shape == (6, 3) and refs.shape == (6, 5)
    rows = np.concatenate([prompts, refs], axis=1)
    assert (np.diff(rows, axis=1) == 1).all()
    with pytest.raises(ValueError, match="fewer than a window of 8"):
        reference_windows(np.arange(5), 2, 3, 5)


def test_the_kept_candidate_is_the_one_with_the_highest_bleu():
    tinyml.manual_seed(0)
    teacher = GPT(GPTConfig(vocab_size=12, block_size=16, n_layer=1, n_head=2, n_embd=16))
    prompts, refs = reference_windows(np.random.default_rng(0).integers(0, 12, 200), 5, 3, 6, seed=1)
    rows, sims = seq_inter_sequences(teacher, prompts, refs, candidates=4, temperature=1.0, seed=2)
    assert rows.shape == (5, 9) and (rows[:, :3] == prompts).all()
    assert np.allclose(sims, [sentence_bleu(r[3:], ref) for r, ref in zip(rows, refs)])
    greedy, g_sims = seq_inter_sequences(teacher, prompts, refs, candidates=1, seed=2)
    assert (sims >= g_sims - 1e-12).all()  # the greedy row is always among the candidates
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        seq_inter_sequences(teacher, prompts, refs, candidates=3, temperature=0.0)
