"""Prompt -> completion tasks for a causal LM: batches that train on the completion only, and
exact-match evaluation with greedy decoding.

A sample is the text prompt + completion. The model reads it shifted by one (inputs = ids[:-1],
targets = ids[1:]); targets inside the prompt and in the padding are -100, which the GPT's
cross-entropy skips, so the loss is the mean negative log-likelihood of the completion tokens:
the model is never trained to predict the question. Rows are padded with `pad_id` to the longest
sample; each batch is cropped to its own longest row, so short formats pay for short rows.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from tinyml.models import generate

IGNORE = -100  # the target value lm_loss skips


def encode_pairs(tok, pairs: Sequence[tuple[str, str]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (N, T) int64 with T = longest sample - 1: inputs are the samples'
    ids (padded with pad_id), targets the next ids on completion positions and IGNORE elsewhere."""
    if not pairs:
        raise ValueError("encode_pairs: no (prompt, completion) pairs to encode")
    rows = [(tok.encode(p), tok.encode(c)) for p, c in pairs]
    if any(not c for _, c in rows) or any(not p for p, _ in rows):
        raise ValueError("encode_pairs: every prompt and completion must be non-empty")
    T = max(len(p) + len(c) for p, c in rows) - 1
    inputs = np.full((len(rows), T), pad_id, dtype=np.int64)
    targets = np.full((len(rows), T), IGNORE, dtype=np.int64)
    for i, (p, c) in enumerate(rows):
        ids = p + c
        inputs[i, : len(ids) - 1] = ids[:-1]
        # position t predicts ids[t + 1]: the completion's tokens are predicted from len(p) - 1 on
        targets[i, len(p) - 1: len(ids) - 1] = c
    return inputs, targets


class CompletionSampler:
    """Random batches of rows (with replacement across batches, reproducible from `seed`), each
    cropped to the last column any of its rows uses; state_dict/load_state_dict for exact resume."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, batch_size: int, seed: int = 0):
        if inputs.shape != targets.shape or inputs.ndim != 2:
            raise ValueError(f"inputs and targets must be equal 2-d shapes, got {inputs.shape} and "
                             f"{targets.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size
        # the last used column of each row: its last completion target
        used = targets != IGNORE
        self.lengths = targets.shape[1] - np.argmax(used[:, ::-1], axis=1)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.batches_drawn = 0

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.rng.integers(0, len(self.inputs), size=self.batch_size)
        self.batches_drawn += 1
        T = int(self.lengths[rows].max())
        return self.inputs[rows, :T], self.targets[rows, :T]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "rng": self.rng.bit_generator.state, "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng(self.seed)
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = int(state["batches_drawn"])


def greedy_completions(model, tok, prompts: Sequence[str], max_new_tokens: int, stop_id: int,
                       batch_size: int = 256) -> list[str]:
    """The model's greedy completion of each prompt (up to its first stop token, included).
    Prompts of equal length are decoded together, with the KV cache."""
    out: list[str | None] = [None] * len(prompts)
    encoded = [tok.encode(p) for p in prompts]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    for length, idx in sorted(by_length.items()):
        for start in range(0, len(idx), batch_size):
            chunk = idx[start: start + batch_size]
            rows = generate(model, [encoded[i] for i in chunk], max_new_tokens, temperature=0.0,
                            stop_tokens=[stop_id])
            for i, row in zip(chunk, rows):
                out[i] = tok.decode(row[length:])
    return out  # type: ignore[return-value]


def exact_match(model, tok, prompts: Sequence[str], answers: Sequence[str], parse: Callable[[str], str],
                max_new_tokens: int, stop_id: int, batch_size: int = 256) -> tuple[float, list[str]]:
    """(fraction of prompts whose parsed greedy completion equals the answer, the completions)."""
    if len(prompts) != len(answers) or not prompts:
        raise ValueError(f"exact_match needs as many answers as prompts (> 0), got {len(prompts)} prompts "
                         f"and {len(answers)} answers")
    completions = greedy_completions(model, tok, prompts, max_new_tokens, stop_id, batch_size)
    hits = sum(parse(c) == a for c, a in zip(completions, answers))
    return hits / len(prompts), completions
