"""Adapt-Pruner (Pan et al. 2025, "Adapt-Pruner: Adaptive Structural Pruning for Efficient Small
Language Model Training"): structured pruning interleaved with training, to a target parameter count.

    pruned, history = adapt_prune(gpt, train_sampler, AdaptPruneConfig(target_params=810_000, steps=600))

Each pruning round
1. measures each block's importance as how much it changes its input (the paper's "mapping"):
   I_l = 1 - mean over tokens of cos(x_l, block_l(x_l));
2. turns the round's overall sparsity s into per-layer sparsities, higher where a layer matters less
   (s after round k of R, for a final sparsity S: "linear" k S / R; "geometric" 1 - (1 - S)^(k/R), each
   round removing the same fraction of what is left, so the last cut is no deeper than the first):
   s_l = s (1 - amplitude z_l),  z_l = (I_l - mean I) / (max I - min I), clipped to [0, 0.95];
3. keeps, in layer l, the round(H0 (1 - s_l)) heads and round(I0 (1 - s_l)) MLP channels of the highest
   first-order Taylor score (train/pruning/structure.py), sizes counted from the layer's original H0, I0;
   the last round then trims MLP channels of the least important layers until the count is <= target.
Between rounds the model trains (AdamW, warmup + cosine over all `steps`; after a prune the optimizer
is rebuilt around the new tensors with Adam's moments of the kept entries sliced over); rounds happen
in the first `prune_until` of the steps and the rest trains the final model. `magnitude_prune` is the
one-shot baseline: uniform sparsity, |w| scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tinyml
from tinyml.nn.utils import clip_grad_norm_

from ..schedule import WarmupCosine
from ..trainer import make_optimizer
from .model import PrunableGPT
from .structure import group_scores, keep_top, layer_params, prunable_size, prune_layer

__all__ = ["AdaptPruneConfig", "round_sparsity", "layer_importance", "layer_sparsities", "adapt_prune",
           "magnitude_prune", "train_steps", "evaluate", "check_target"]


@dataclass
class AdaptPruneConfig:
    target_params: int
    steps: int = 600  # optimizer steps in all, pruning rounds included
    rounds: int = 8
    prune_until: float = 0.6  # fraction of the steps over which the rounds are spread
    amplitude: float = 0.5  # how much layer importance moves the per-layer sparsity
    schedule: str = "linear"  # how the overall sparsity grows over the rounds: "linear" or "geometric"
    calib_batches: int = 2  # batches for the importance and the Taylor scores of a round
    lr: float = 1e-3
    min_lr: float | None = None
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.99)
    grad_clip: float | None = 1.0


def _batch(sampler):
    x, y = sampler.next_batch()
    return tinyml.tensor(x), tinyml.tensor(y)


def check_target(model, target_params: int) -> tuple[int, int]:
    """(prunable parameters now, their target) for a model to be pruned to `target_params` in all; a
    ValueError naming the numbers when the target is larger than the model or below what pruning can
    reach (one head and one MLP channel a layer)."""
    total = model.num_parameters()
    if isinstance(target_params, bool) or not isinstance(target_params, int) or target_params <= 0:
        raise ValueError(f"target_params must be a positive int, got {target_params!r}")
    if target_params > total:
        raise ValueError(f"the target of {target_params:,} parameters is larger than the model "
                         f"({total:,} parameters); pruning only removes parameters")
    now, floor = prunable_size(model.config)
    fixed = total - now
    if target_params - fixed < floor:
        raise ValueError(f"the target of {target_params:,} parameters is below what structured pruning "
                         f"can reach: {fixed + floor:,} ({fixed:,} in embeddings, norms and output biases, "
                         f"and one head and one MLP channel in each of {model.config.n_layer} layers)")
    return now, target_params - fixed


def round_sparsity(k: int, rounds: int, final: float, schedule: str) -> float:
    """Overall sparsity after round k (1..rounds) of a run ending at sparsity `final`: "linear"
    k final / rounds, "geometric" 1 - (1 - final)^(k / rounds)."""
    if schedule == "linear":
        return final * k / rounds
    if schedule == "geometric":
        return 1.0 - (1.0 - final) ** (k / rounds)
    raise ValueError(f"schedule must be 'linear' or 'geometric', got {schedule!r}")


def layer_importance(model, batches) -> np.ndarray:
    """I_l = 1 - mean over tokens of cos(block input, block output), per block, on `batches`, in eval
    mode (dropout off, so the measure is deterministic)."""
    sums = np.zeros(len(model.transformer.h))
    count = 0

    def hook(i):
        def record(module, args, out):
            x, y = args[0].detach().float().numpy(), out.detach().float().numpy()
            cos = (x * y).sum(-1) / np.maximum(np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1), 1e-12)
            sums[i] += float(cos.mean())
        return record

    handles = [b.register_forward_hook(hook(i)) for i, b in enumerate(model.transformer.h)]
    was_training = model.training
    model.eval()
    try:
        with tinyml.no_grad():
            for x, _ in batches:
                model(x)
                count += 1
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return 1.0 - sums / max(count, 1)


def layer_sparsities(importance: np.ndarray, sparsity: float, amplitude: float) -> np.ndarray:
    """s_l = s (1 - amplitude z_l), z_l the importance centred and divided by its range; clipped to
    [0, 0.95]."""
    spread = float(importance.max() - importance.min())
    z = (importance - importance.mean()) / spread if spread > 0 else np.zeros_like(importance)
    return np.clip(sparsity * (1.0 - amplitude * z), 0.0, 0.95)


def _apply_sizes(model, heads, channels, scores, states=None) -> None:
    for layer, (h, c) in enumerate(zip(heads, channels)):
        head_s, chan_s = scores[layer]
        prune_layer(model, layer, heads=keep_top(head_s, h) if h < len(head_s) else None,
                    channels=keep_top(chan_s, c) if c < len(chan_s) else None, states=states)


def _trim_to(cfg, heads, channels, budget, weights, cap) -> None:
    """Lower `channels` (then `heads`) in place, from the layers with the largest weight per remaining
    size first, until the prunable parameters fit `budget`; then raise channels (to at most `cap`, the
    current sizes) while they still fit."""
    C, b, D = cfg.n_embd, int(cfg.bias), cfg.n_embd // cfg.n_head
    L = len(heads)

    def excess():
        return sum(layer_params(cfg, heads[i], channels[i]) for i in range(L)) - budget

    for sizes, unit in ((channels, 2 * C + b), (heads, 3 * D * (C + b) + D * C)):
        while excess() > 0 and any(s > 1 for s in sizes):
            i = max((j for j in range(L) if sizes[j] > 1), key=lambda j: weights[j] * sizes[j])
            sizes[i] -= min(sizes[i] - 1, max(1, math.ceil(excess() / unit / L)))
    # whole heads can overshoot: give channels back (up to `cap`) to the most important layers first
    for i in sorted(range(L), key=lambda j: weights[j]):
        room = -excess() // (2 * C + b)
        if room > 0:
            channels[i] = min(cap[i], channels[i] + room)


def _sizes_at(cfg, original, s) -> tuple[list, list]:
    """Heads and MLP channels of each layer at sparsities `s` of its original sizes: at least one, at
    most what the layer has now."""
    return ([min(cfg.layer_heads[i], max(1, round(h0 * (1 - s[i])))) for i, (h0, _) in enumerate(original)],
            [min(cfg.layer_inner[i], max(1, round(c0 * (1 - s[i])))) for i, (_, c0) in enumerate(original)])


def _fitted_sizes(cfg, original, importance: np.ndarray, amplitude: float, budget: int):
    """Per-layer (heads, channels) in the shape layer_sparsities gives, s_l = t (1 - amplitude z_l)
    clipped to [0, 1] (at least one head and one channel), at the smallest scale t whose prunable part
    fits `budget` (bisection: the sizes shrink as t grows), never above the layers' current sizes. Unlike
    a fixed sparsity clipped at 0.95, this reaches any budget down to the floor while keeping the
    allocation's shape, so every round of a schedule removes what the schedule says."""
    spread = float(importance.max() - importance.min())
    z = (importance - importance.mean()) / spread if spread > 0 else np.zeros_like(importance)
    weight = np.clip(1.0 - amplitude * z, 0.0, None)
    L = len(original)

    def sizes(t):
        return _sizes_at(cfg, original, np.clip(t * weight, 0.0, 1.0))

    def total(t):
        h, c = sizes(t)
        return sum(layer_params(cfg, h[i], c[i]) for i in range(L))

    lo, hi = 0.0, 1.0 / max(float(weight[weight > 0].min()) if (weight > 0).any() else 1.0, 1e-6)
    if total(lo) <= budget:
        return sizes(lo)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if total(mid) <= budget else (mid, hi)
    return sizes(hi)


def _calibrate(model, batches) -> None:
    """Gradients of the loss summed over `batches`, for the Taylor scores."""
    model.zero_grad()
    for x, y in batches:
        model(x, y)[1].backward()


def prune_round(model: PrunableGPT, batches, sparsity: float, original, cfg: AdaptPruneConfig,
                budget: int | None = None, states: dict | None = None) -> np.ndarray:
    """One Adapt-Pruner round at overall sparsity `sparsity` (of the original prunable sizes `original`,
    a list of (heads, channels) per layer); with `budget`, trim until the prunable part fits it. With
    cfg.schedule "geometric" the sizes are fitted to `budget` in the shape of the per-layer sparsities
    (_fitted_sizes) instead of taken at `sparsity`.
    `states` (optimizer state by parameter id) follows the pruned tensors. Returns the layer importances."""
    importance = layer_importance(model, batches)
    mc = model.config
    if cfg.schedule == "geometric":
        heads, chans = _fitted_sizes(mc, original, importance, cfg.amplitude, budget)
    else:
        heads, chans = _sizes_at(mc, original, layer_sparsities(importance, sparsity, cfg.amplitude))
    if budget is not None:
        _trim_to(mc, heads, chans, budget, weights=1.0 - importance + 1e-6, cap=list(mc.layer_inner))
    _calibrate(model, batches)
    scores = [group_scores(model, layer, "taylor") for layer in range(mc.n_layer)]
    model.zero_grad()
    _apply_sizes(model, heads, chans, scores, states)
    return importance


def magnitude_prune(model, target_params: int) -> PrunableGPT:
    """One-shot baseline: the same sparsity in every layer, groups kept by weight magnitude, to
    <= target_params in one go."""
    model = PrunableGPT.from_gpt(model)
    now, budget = check_target(model, target_params)
    mc = model.config
    ratio = budget / now
    heads = [max(1, round(h * ratio)) for h in mc.layer_heads]
    chans = [max(1, round(c * ratio)) for c in mc.layer_inner]
    _trim_to(mc, heads, chans, budget, weights=np.ones(mc.n_layer), cap=list(mc.layer_inner))
    scores = [group_scores(model, layer, "magnitude") for layer in range(mc.n_layer)]
    _apply_sizes(model, heads, chans, scores)
    return model


def _optimizer(model, cfg: AdaptPruneConfig, step: int, states: dict | None = None):
    """AdamW at `step` of the run's schedule; `states` ({id: (param, state)}) restores each surviving
    parameter's moments (sliced for pruned tensors), so a pruning round does not restart Adam."""
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    for p in model.parameters():
        entry = (states or {}).get(id(p))
        if entry is not None and entry[0] is p:
            opt.state[p] = entry[1]
    sched = WarmupCosine(opt, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr)
    sched.load_state_dict({**sched.state_dict(), "last_step": step})  # the global schedule goes on
    return opt, sched


def train_steps(model, sampler, cfg: AdaptPruneConfig, start: int, stop: int, opt=None, sched=None,
                losses: list | None = None):
    """Optimizer steps start..stop-1 of the run's schedule on batches from `sampler`; returns (opt, sched)."""
    if opt is None:
        opt, sched = _optimizer(model, cfg, start)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    for _ in range(start, stop):
        x, y = _batch(sampler)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        if cfg.grad_clip:
            clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        value = loss.item()
        if losses is not None:
            losses.append(value)
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss is {value} at step {sched.last_step}")
    return opt, sched


def evaluate(model, sampler, iters: int) -> float:
    """Mean loss over `iters` batches of `sampler`, in eval mode."""
    model.eval()
    with tinyml.no_grad():
        total = sum(model(*_batch(sampler))[1].item() for _ in range(iters))
    model.train()
    return total / iters


def adapt_prune(model, train_sampler, cfg: AdaptPruneConfig, log=None) -> tuple[PrunableGPT, list[dict]]:
    """Prune `model` (a GPT or PrunableGPT) to <= cfg.target_params while training it for cfg.steps
    steps on `train_sampler`. Returns the pruned model and one record per round (step, parameters
    after, layer importances, per-layer heads and MLP widths)."""
    round_sparsity(1, 1, 0.0, cfg.schedule)  # an unknown schedule fails here, before any training
    if not (cfg.rounds >= 1 and 0 < cfg.prune_until <= 1 and cfg.steps >= cfg.rounds):
        raise ValueError(f"adapt_prune needs rounds >= 1, 0 < prune_until <= 1 and steps >= rounds; got "
                         f"rounds={cfg.rounds}, prune_until={cfg.prune_until}, steps={cfg.steps}")
    model = PrunableGPT.from_gpt(model)
    now, budget = check_target(model, cfg.target_params)
    final_sparsity = 1.0 - budget / now
    original = list(zip(model.config.layer_heads, model.config.layer_inner))
    at = [round(k * cfg.prune_until * cfg.steps / cfg.rounds) for k in range(cfg.rounds)]
    history, step = [], 0
    opt, sched = _optimizer(model, cfg, 0)
    for k, start in enumerate(at):
        if start > step:
            train_steps(model, train_sampler, cfg, step, start, opt, sched)
            step = start
        batches = [_batch(train_sampler) for _ in range(cfg.calib_batches)]
        last = k == cfg.rounds - 1
        states = {id(p): (p, s) for p, s in opt.state.items()}
        sparsity = round_sparsity(k + 1, cfg.rounds, final_sparsity, cfg.schedule)
        # the geometric schedule fits every round to its budget; the linear one only the last
        fit = budget if last else round(now * (1.0 - sparsity)) if cfg.schedule == "geometric" else None
        importance = prune_round(model, batches, sparsity, original, cfg, budget=fit, states=states)
        opt, sched = _optimizer(model, cfg, step, states)
        record = {"round": k + 1, "step": step, "params": model.num_parameters(),
                  "importance": [round(float(v), 5) for v in importance],
                  "layer_heads": list(model.config.layer_heads),
                  "layer_inner": list(model.config.layer_inner)}
        history.append(record)
        if log:
            log(f"round {k + 1}/{cfg.rounds} at step {step}: {record['params']:,} parameters, heads "
                f"{record['layer_heads']}, MLP {record['layer_inner']}")
    train_steps(model, train_sampler, cfg, step, cfg.steps, opt, sched)
    return model, history
