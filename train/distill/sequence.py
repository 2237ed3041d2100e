"""Sequence-level knowledge distillation (Kim & Rush 2016): the teacher writes the training data.
It continues short prompts drawn from real text (greedy or sampled, with the KV cache of
tinyml.models.generate), and the student is trained on those continuations with the ordinary
next-token loss; with lm_distill_loss's alpha > 0 the student also matches the teacher's
distribution at every position of them (word-level KD on the teacher's text, Seq-KD + Word-KD).

    rows = generate_sequences(teacher, prompts_from_tokens(train_ids, 512, 8, seed=0), 57, temperature=1.0)
    batches = SequenceBatches(rows, prompt_len=8, batch_size=12, seed=0)   # x, y with y = -100 on prompts
    Trainer(student, batches, val_batches, cfg, loss_fn=partial(lm_distill_loss, teacher=teacher, alpha=0))

Only text crosses from teacher to student here, so the two may have different tokenizers:
`generate_text` decodes the generations, and any student can be trained on that text (e.g.
`tinyml train --data teacher.txt`); logit KD and layer inheritance need one vocabulary.
"""
from __future__ import annotations

import numpy as np
from tinyml.models import generate

import tinyml


def prompts_from_tokens(ids, n: int, prompt_len: int, seed: int = 0) -> np.ndarray:
    """(n, prompt_len) windows of `ids` at uniformly random offsets (own generator, from `seed`)."""
    if prompt_len < 1 or n < 1:
        raise ValueError(f"need n >= 1 prompts of prompt_len >= 1 tokens, got n={n}, prompt_len={prompt_len}")
    if len(ids) < prompt_len:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than a prompt of {prompt_len}")
    rng = np.random.Generator(np.random.PCG64(seed))
    starts = rng.integers(0, len(ids) - prompt_len + 1, size=n)
    return np.stack([np.asarray(ids[s:s + prompt_len]) for s in starts]).astype(np.int64)


def generate_sequences(teacher, prompts: np.ndarray, new_tokens: int, temperature: float = 1.0,
                       top_k: int | None = None, seed: int = 0, batch_size: int = 64,
                       on_batch=None) -> np.ndarray:
    """(n, prompt_len + new_tokens): each prompt row continued by the teacher, `batch_size` rows at a
    time through the KV cache; temperature 0 is greedy (the mode of the teacher's distribution
    token by token, Kim & Rush's beam of width 1), > 0 samples (reproducible from `seed`).
    Rows longer than the teacher's context continue on its last max_positions tokens (generate's
    cropping). `on_batch(done, total)` is called after each batch (progress)."""
    prompts = np.asarray(prompts, dtype=np.int64)
    if prompts.ndim != 2 or prompts.shape[0] == 0 or prompts.shape[1] == 0:
        raise ValueError(f"prompts must be a non-empty (n, prompt_len) array of token ids, "
                         f"got shape {prompts.shape}")
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    rng_state = tinyml.random.get_rng_state()
    tinyml.manual_seed(seed)
    rows = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            rows.extend(generate(teacher, chunk, new_tokens, temperature=temperature, top_k=top_k))
            if on_batch is not None:
                on_batch(min(start + batch_size, len(prompts)), len(prompts))
    finally:  # generation must not move the training run's random stream
        tinyml.random.set_rng_state(rng_state)
    return np.asarray(rows, dtype=np.int64)


def generate_text(teacher, tokenizer, prompts: np.ndarray, new_tokens: int, separator: str = "\n\n",
                  **kw) -> str:
    """The teacher's continuations of `prompts`, decoded and joined: a corpus for a student with any
    tokenizer (the prompts themselves are left out: they are real text, not the teacher's)."""
    rows = generate_sequences(teacher, prompts, new_tokens, **kw)
    return separator.join(tokenizer.decode(r[prompts.shape[1]:]) for r in rows)


class SequenceBatches:
    """Batches (x, y) of teacher-generated rows (n, L): x = row[:-1], y = row[1:] with the targets
    inside the prompt set to -100 (they are real text, not the teacher's: no loss there). Rows are
    drawn uniformly with replacement from an own generator; state_dict/load_state_dict resume it."""

    def __init__(self, rows: np.ndarray, prompt_len: int, batch_size: int, seed: int = 0):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < prompt_len + 1:
            raise ValueError(f"rows must be (n, L) with n >= 1 and L > prompt_len = {prompt_len}, "
                             f"got shape {rows.shape}")
        self.x, y = rows[:, :-1], rows[:, 1:].copy()
        y[:, :max(prompt_len - 1, 0)] = -100
        self.y = y
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        idx = self.rng.integers(0, len(self.x), size=self.batch_size)
        return self.x[idx], self.y[idx]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self.rng.bit_generator.state = state["rng"]
