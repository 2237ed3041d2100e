"""Autoregressive sampling from a causal language model, with or without a KV cache.

    out = generate(model, [[1, 2, 3]], max_new_tokens=50, temperature=0.8, top_k=40)
    out = generate(model, prompt_ids, 50, temperature=0)      # greedy

With the cache the prompt is run once and each step feeds only the new token; without it each
step reruns the whole (cropped) context. Both give the same tokens. Randomness comes from
tinyml's global generator, so `tinyml.manual_seed` makes samples reproducible.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

import tinyml
from tinyml.random import default_generator


def _probabilities(logits: np.ndarray, temperature: float, top_k: int | None,
                   top_p: float | None) -> np.ndarray:
    """Softmax(logits / temperature) after keeping the top_k largest logits and then the smallest
    set of tokens whose probability sums to at least top_p (nucleus sampling). float64 on the host."""
    z = logits.astype(np.float64) / temperature
    if top_k is not None and 0 < top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[..., -top_k, None]
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        # keep a token if the mass before it is below top_p (so the most likely token always stays)
        keep_sorted = (np.cumsum(sorted_p, axis=-1) - sorted_p) < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    return p


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """One token per row of logits (B, V): argmax when temperature == 0, else a draw."""
    if not math.isfinite(temperature) or temperature < 0:  # NaN would sample from NaN probabilities
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 0):
        raise ValueError(f"top_k must be None or an integer >= 0 (0: no top-k filter), got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(axis=-1)
    p = _probabilities(logits, temperature, top_k, top_p)
    rng = rng or default_generator()
    u = rng.random(p.shape[0])[:, None]
    # inverse-CDF draw: first index whose cumulative probability exceeds u
    idx = (np.cumsum(p, axis=-1) <= u).sum(axis=-1)
    return np.minimum(idx, p.shape[-1] - 1)


def _last_logits(model, ids: np.ndarray, device, cache) -> np.ndarray:
    logits, _ = model(tinyml.tensor(ids, dtype=tinyml.int64, device=device), cache=cache)
    return logits[:, -1, :].float().numpy()


def generate(model, prompt: Sequence[int] | Sequence[Sequence[int]] | np.ndarray, max_new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             stop_tokens: Iterable[int] | None = None, use_cache: bool = True,
             device=None) -> list[list[int]]:
    """Extend each prompt row by up to `max_new_tokens` tokens; a row ends at its first stop
    token (included), and generation ends when all rows have. Returns prompt + new tokens per row.

    Context longer than the model's `max_positions` is cropped to its last `max_positions`
    tokens; past that point the cache is rebuilt from the cropped window at each step, which
    is exactly what the uncached path computes."""
    ids = np.asarray(prompt, dtype=np.int64)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"generate: prompt must be a non-empty sequence of token ids, got shape {ids.shape}")
    if device is None:
        device = next(iter(model.parameters())).device
    stops = set(int(s) for s in (stop_tokens or ()))
    limit = getattr(model, "max_positions", None)
    B = ids.shape[0]
    done = np.zeros(B, dtype=bool)
    ended_at = np.full(B, -1)
    was_training = model.training
    model.eval()
    try:
        with tinyml.no_grad():
            cache = None
            for step in range(max_new_tokens):
                ctx = ids if limit is None else ids[:, -limit:]
                if use_cache and (limit is None or ids.shape[1] <= limit):
                    if cache is None:
                        cache = model.new_cache()
                        logits = _last_logits(model, ctx, device, cache)
                    else:
                        logits = _last_logits(model, ids[:, -1:], device, cache)
                else:
                    cache = None
                    logits = _last_logits(model, ctx, device, None)
                nxt = sample_next(logits, temperature, top_k, top_p)
                ids = np.concatenate([ids, nxt[:, None].astype(np.int64)], axis=1)
                if stops:
                    hit = ~done & np.isin(nxt, list(stops))
                    ended_at[hit] = ids.shape[1]
                    done |= hit
                    if done.all():
                        break
    finally:
        model.train(was_training)
    return [row[: ended_at[b]].tolist() if ended_at[b] >= 0 else row.tolist() for b, row in enumerate(ids)]


class GenerationMixin:
    """`model.generate(input_ids, ...)` as transformers' models have it: a (B, T) tensor (or list)
    of prompt ids in, a (B, T + new) int64 tensor out. Greedy unless do_sample; rows that reach
    eos_token_id early are padded with it (Hugging Face's behaviour without a pad token)."""

    def generate(self, input_ids, max_new_tokens: int = 20, do_sample: bool = False, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, eos_token_id: int | None = None,
                 use_cache: bool = True) -> tinyml.Tensor:
        if isinstance(input_ids, tinyml.Tensor):
            device, prompt = input_ids.device, input_ids.numpy()
        else:
            device, prompt = None, np.asarray(input_ids)
        if not do_sample:
            temperature, top_k, top_p = 0.0, None, None
        rows = generate(self, prompt, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        stop_tokens=None if eos_token_id is None else [eos_token_id], use_cache=use_cache)
        width = max(len(r) for r in rows)
        out = np.array([r + [eos_token_id] * (width - len(r)) for r in rows], dtype=np.int64)
        return tinyml.tensor(out, device=device) if device is not None else tinyml.tensor(out)
