"""How many heads and MLP channels each layer keeps in a pruning round, and how large the other axes
(blocks, residual width, head dim) are after it: the sizing half of Adapt-Pruner (adapt.py runs the
rounds).

Overall sparsity after round k of R, for a final sparsity S of the heads and channels: "linear"
s_k = k S / R, "geometric" s_k = 1 - (1 - S)^(k/R) (each round removes the same fraction of what is
left, so the last cut is no deeper than the first). The other axes follow the same schedule in their
own units: a_k = a_0 + (a_R - a_0) k / R, or a_0 (a_R / a_0)^(k/R), rounded.

Per-layer sparsity from layer importance I_l: s_l = s (1 - amplitude z_l), z_l = (I_l - mean I) /
(max I - min I), clipped to [0, 0.95] ("linear"), or fitted to the round's parameter budget ("geometric").
"""
from __future__ import annotations

import math

import numpy as np

from .structure import layer_params

__all__ = ["round_sparsity", "axis_at", "layer_sparsities", "sizes_at", "fitted_sizes", "trim_to",
           "param_count"]


def round_sparsity(k: int, rounds: int, final: float, schedule: str) -> float:
    """Overall sparsity after round k (1..rounds) of a run ending at sparsity `final`: "linear"
    k final / rounds, "geometric" 1 - (1 - final)^(k / rounds)."""
    if schedule == "linear":
        return final * k / rounds
    if schedule == "geometric":
        return 1.0 - (1.0 - final) ** (k / rounds)
    raise ValueError(f"schedule must be 'linear' or 'geometric', got {schedule!r}")


def axis_at(k: int, rounds: int, start: int, final: int, schedule: str) -> int:
    """An axis' size (blocks, residual width, head dim) after round k of `rounds`, going from `start`
    to `final` on the schedule; exactly `final` at the last round."""
    if k >= rounds:
        return final
    frac = k / rounds
    value = start + (final - start) * frac if schedule == "linear" else start * (final / start) ** frac
    return max(final, min(start, round(value)))


def layer_sparsities(importance: np.ndarray, sparsity: float, amplitude: float) -> np.ndarray:
    """s_l = s (1 - amplitude z_l), z_l the importance centred and divided by its range; clipped to
    [0, 0.95]."""
    return np.clip(sparsity * _shape(importance, amplitude), 0.0, 0.95)


def _shape(importance: np.ndarray, amplitude: float) -> np.ndarray:
    spread = float(importance.max() - importance.min())
    z = (importance - importance.mean()) / spread if spread > 0 else np.zeros_like(importance)
    return 1.0 - amplitude * z


def param_count(cfg, n_embd: int, sizes) -> int:
    """Parameters of a PrunableGPT of config `cfg` at residual width `n_embd` with blocks of `sizes`
    [(heads, MLP width, head dim), ...]: embeddings, norms, output biases and every block's heads and
    channels (structure.layer_params)."""
    C, b = n_embd, int(cfg.bias)
    norm = C * (1 + b)
    total = (cfg.vocab_size + cfg.block_size) * C + norm
    if not cfg.tie_word_embeddings:
        total += cfg.vocab_size * C
    for h, i, d in sizes:
        qk_norms = 4 * d if cfg.qk_layernorm else 0  # q_norm and k_norm: weight and bias over the head dim
        total += 2 * norm + 2 * b * C + layer_params(cfg, h, i, d, n_embd=C) + qk_norms
    return total


def sizes_at(cfg, original, s) -> tuple[list, list]:
    """Heads and MLP channels of each layer at sparsities `s` of its original sizes: at least one, at
    most what the layer has now."""
    return ([min(cfg.layer_heads[i], max(1, round(h0 * (1 - s[i])))) for i, (h0, _) in enumerate(original)],
            [min(cfg.layer_inner[i], max(1, round(c0 * (1 - s[i])))) for i, (_, c0) in enumerate(original)])


def _hc_params(cfg, heads, channels) -> int:
    return sum(layer_params(cfg, h, c, d) for h, c, d in zip(heads, channels, cfg.layer_head_dim))


def fitted_sizes(cfg, original, importance: np.ndarray, amplitude: float, budget: int):
    """Per-layer (heads, channels) in the shape layer_sparsities gives, s_l = t (1 - amplitude z_l)
    clipped to [0, 1] (at least one head and one channel), at the smallest scale t whose heads and
    channels fit `budget` (bisection: the sizes shrink as t grows), never above the layers' current
    sizes. Unlike a fixed sparsity clipped at 0.95, this reaches any budget down to the floor while
    keeping the allocation's shape, so every round of a schedule removes what the schedule says."""
    weight = np.clip(_shape(importance, amplitude), 0.0, None)

    def sizes(t):
        return sizes_at(cfg, original, np.clip(t * weight, 0.0, 1.0))

    lo, hi = 0.0, 1.0 / max(float(weight[weight > 0].min()) if (weight > 0).any() else 1.0, 1e-6)
    if _hc_params(cfg, *sizes(lo)) <= budget:
        return sizes(lo)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if _hc_params(cfg, *sizes(mid)) <= budget else (mid, hi)
    return sizes(hi)


def trim_to(cfg, heads, channels, budget, weights, cap) -> None:
    """Lower `channels` (then `heads`) in place, from the layers with the largest weight per remaining
    size first, until the heads and channels fit `budget`; then raise channels (to at most `cap`, the
    current sizes) while they still fit."""
    C, b = cfg.n_embd, int(cfg.bias)
    L = len(heads)

    def excess():
        return _hc_params(cfg, heads, channels) - budget

    head_unit = min(3 * d * (C + b) + d * C for d in cfg.layer_head_dim)
    for sizes, unit in ((channels, 2 * C + b), (heads, head_unit)):
        while excess() > 0 and any(s > 1 for s in sizes):
            i = max((j for j in range(L) if sizes[j] > 1), key=lambda j: weights[j] * sizes[j])
            sizes[i] -= min(sizes[i] - 1, max(1, math.ceil(excess() / unit / L)))
    # whole heads can overshoot: give channels back (up to `cap`) to the most important layers first
    for i in sorted(range(L), key=lambda j: weights[j]):
        room = -excess() // (2 * C + b)
        if room > 0:
            channels[i] = min(cap[i], channels[i] + room)
