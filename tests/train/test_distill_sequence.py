"""Sequence-level KD data (teacher generations, greedy and sampled through the KV cache), its batches,
BERT's masked batches, and a learning check: word-level KD pulls a student onto its teacher."""
import functools

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig, generate
from tinyml.train import TrainConfig, Trainer
from tinyml.train.distill import kd_loss, lm_distill_loss
from tinyml.train.distill.mlm import MLMBatches
from tinyml.train.distill.sequence import (
    SequenceBatches,
    generate_sequences,
    generate_text,
    prompts_from_tokens,
)

import tinyml
import tinyml.random
from tinyml.data import CharTokenizer


def _gpt(seed, n_layer=1, width=16, vocab=13, block=16):
    tinyml.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=2, n_embd=width)).eval()


def test_prompts_are_windows_of_the_text():
    ids = np.arange(100)
    p = prompts_from_tokens(ids, 7, 5, seed=3)
    assert p.shape == (7, 5) and np.all(np.diff(p, axis=1) == 1)  # consecutive ids: windows of arange
    assert np.array_equal(p, prompts_from_tokens(ids, 7, 5, seed=3))
    with pytest.raises(ValueError, match="the text has 3 tokens, fewer than a prompt of 5"):
        prompts_from_tokens(np.arange(3), 2, 5)


def test_greedy_generations_are_the_teachers_argmax_continuations_and_leave_the_rng_alone():
    teacher = _gpt(0)
    prompts = prompts_from_tokens(np.random.default_rng(0).integers(0, 13, 200), 5, 4, seed=1)
    before = tinyml.random.get_rng_state()
    rows = generate_sequences(teacher, prompts, 13, temperature=0.0, batch_size=2)  # 17 > context 16: crop
    assert rows.shape == (5, 17) and np.array_equal(rows[:, :4], prompts)
    assert np.array_equal(rows, np.asarray(generate(teacher, prompts, 13, temperature=0.0, use_cache=False)))
    sampled = generate_sequences(teacher, prompts, 6, temperature=1.0, seed=5)
    assert np.array_equal(sampled, generate_sequences(teacher, prompts, 6, temperature=1.0, seed=5))
    assert not np.array_equal(sampled, generate_sequences(teacher, prompts, 6, temperature=1.0, seed=6))
    after = tinyml.random.get_rng_state()
    assert str(before) == str(after)


def test_generate_text_decodes_the_continuations_only():
    tok = CharTokenizer("abcdefghijklm")
    teacher = _gpt(1)
    prompts = np.array([[0, 1, 2], [3, 4, 5]])
    text = generate_text(teacher, tok, prompts, 4, temperature=0.0, separator="|")
    rows = generate_sequences(teacher, prompts, 4, temperature=0.0)
    assert text == "|".join(tok.decode(r[3:]) for r in rows)


def test_sequence_batches_ignore_prompt_targets_and_resume():
    rows = np.arange(40).reshape(4, 10)
    b = SequenceBatches(rows, prompt_len=3, batch_size=2, seed=0)
    x, y = b.next_batch()
    assert x.shape == y.shape == (2, 9)
    assert np.all(y[:, :2] == -100) and np.all(y[:, 2:] == x[:, 2:] + 1)
    state = b.state_dict()
    nxt = b.next_batch()
    b.load_state_dict(state)
    assert all(np.array_equal(u, v) for u, v in zip(nxt, b.next_batch()))
    with pytest.raises(ValueError, match="L > prompt_len = 10"):
        SequenceBatches(rows, prompt_len=10, batch_size=2)


def test_mlm_batches_mask_15_percent_80_10_10_and_resume():
    ids = np.random.default_rng(0).integers(0, 50, 20000)
    b = MLMBatches(ids, block_size=32, batch_size=64, mask_token_id=50, vocab_size=51, seed=0)
    inputs, attn, labels = b.next_batch()
    assert inputs.shape == attn.shape == labels.shape == (64, 32) and np.all(attn == 1)
    chosen = labels != -100
    assert 0.12 < chosen.mean() < 0.18
    assert 0.74 < (inputs[chosen] == 50).mean() < 0.86
    assert np.all(inputs[~chosen] != 50)
    state = b.state_dict()
    nxt = b.next_batch()
    b.load_state_dict(state)
    assert all(np.array_equal(u, v) for u, v in zip(nxt, b.next_batch()))


def test_word_level_kd_pulls_the_student_onto_the_teacher():
    teacher, student = _gpt(2, n_layer=2), _gpt(3)
    student.train()
    rng = np.random.default_rng(4)
    x = rng.integers(0, 13, (64, 16))
    batches = [(x[i:i + 8], x[i:i + 8]) for i in range(0, 64, 8)]  # targets unused at alpha = 1

    def kl():
        with tinyml.no_grad():
            xs = tinyml.tensor(x)
            return kd_loss(student(xs)[0], teacher(xs)[0], 1.0).item()

    before = kl()
    cfg = TrainConfig(max_steps=20, lr=3e-2, warmup_steps=5, eval_interval=0, progress=False)
    Trainer(student, batches, None, cfg,
            loss_fn=functools.partial(lm_distill_loss, teacher=teacher, temperature=1.0, alpha=1.0)).fit()
    assert kl() < 0.25 * before, (before, kl())
