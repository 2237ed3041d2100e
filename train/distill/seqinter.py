"""Sequence-level interpolation (Seq-Inter, Kim & Rush 2016, section 3.2): of the teacher's candidate
continuations of a prompt, train the student on the one closest to the real continuation, so the
training target lies between the teacher's mode (Seq-KD) and the data (plain training).

    prompts, refs = reference_windows(train_ids, n=512, prompt_len=8, new_tokens=57, seed=0)
    rows, sims = seq_inter_sequences(teacher, prompts, refs, candidates=4, temperature=1.0, seed=0)

Kim & Rush take the K beams of beam search and pick by sentence BLEU against the reference; tinyml's
generate has no beam search, so the candidates here are the teacher's greedy continuation and K - 1
samples at `temperature` (all from the KV cache), picked by the same smoothed sentence BLEU over
token ids:

    BLEU = BP * exp(mean_n log p_n),  p_n = (matched n-grams + 1) / (candidate n-grams + 1), n = 1..4
    BP   = min(1, exp(1 - len(reference) / len(candidate)))        (add-one smoothing: Lin & Och 2004)
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .sequence import generate_sequences


def reference_windows(ids, n: int, prompt_len: int, new_tokens: int, seed: int = 0):
    """(prompts (n, prompt_len), references (n, new_tokens)): windows of `ids` at random offsets,
    split into the prompt the teacher continues and the real continuation."""
    width = prompt_len + new_tokens
    if n < 1 or prompt_len < 1 or new_tokens < 1:
        raise ValueError(f"need n, prompt_len and new_tokens >= 1, got {n}, {prompt_len}, {new_tokens}")
    if len(ids) < width:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than a window of {width}")
    rng = np.random.Generator(np.random.PCG64(seed))
    starts = rng.integers(0, len(ids) - width + 1, size=n)
    windows = np.stack([np.asarray(ids[s:s + width]) for s in starts]).astype(np.int64)
    return windows[:, :prompt_len], windows[:, prompt_len:]


def sentence_bleu(candidate, reference, max_n: int = 4) -> float:
    """Add-one smoothed sentence BLEU of two token sequences, in [0, 1]."""
    c, r = list(candidate), list(reference)
    if not c or not r:
        return 0.0
    log_p = 0.0
    for k in range(1, max_n + 1):
        c_grams = Counter(tuple(c[i:i + k]) for i in range(len(c) - k + 1))
        r_grams = Counter(tuple(r[i:i + k]) for i in range(len(r) - k + 1))
        matched = sum(min(v, r_grams[g]) for g, v in c_grams.items())
        log_p += math.log((matched + 1) / (sum(c_grams.values()) + 1))
    brevity = min(1.0, math.exp(1 - len(r) / len(c)))
    return brevity * math.exp(log_p / max_n)


def seq_inter_sequences(teacher, prompts: np.ndarray, references: np.ndarray, candidates: int = 4,
                        temperature: float = 1.0, seed: int = 0, batch_size: int = 64):
    """(rows (n, prompt_len + new_tokens), the chosen rows' BLEU (n,)): per prompt, the candidate
    continuation (greedy, then candidates - 1 samples) with the highest BLEU against its reference."""
    prompts, references = np.asarray(prompts, dtype=np.int64), np.asarray(references, dtype=np.int64)
    if candidates < 1 or len(prompts) != len(references):
        raise ValueError(f"need candidates >= 1 and a reference per prompt, got {candidates} candidates, "
                         f"{len(prompts)} prompts and {len(references)} references")
    if candidates > 1 and temperature <= 0:
        raise ValueError(f"Seq-Inter with {candidates} candidates samples all but the greedy one: the "
                         f"temperature must be > 0, got {temperature}")
    P, new = prompts.shape[1], references.shape[1]
    pool = [generate_sequences(teacher, prompts, new, temperature=0.0, seed=seed, batch_size=batch_size)]
    if candidates > 1:
        repeated = np.repeat(prompts, candidates - 1, axis=0)
        sampled = generate_sequences(teacher, repeated, new, temperature=temperature, seed=seed,
                                     batch_size=batch_size)
        pool += list(sampled.reshape(len(prompts), candidates - 1, -1).transpose(1, 0, 2))
    stacked = np.stack(pool, axis=1)  # (n, candidates, P + new)
    sims = np.array([[sentence_bleu(row[P:], ref) for row in cands]
                     for cands, ref in zip(stacked, references)])
    best = sims.argmax(axis=1)
    return stacked[np.arange(len(prompts)), best], sims[np.arange(len(prompts)), best]
