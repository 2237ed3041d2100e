"""Adapt-Pruner (Pan et al. 2025, "Adapt-Pruner: Adaptive Structural Pruning for Efficient Small
Language Model Training"): structured pruning interleaved with training, to a target parameter count.

    pruned, history = adapt_prune(gpt, train_sampler, AdaptPruneConfig(target_params=810_000, steps=600))

Each pruning round
1. measures each block's importance as how much it changes its input (the paper's "mapping"):
   I_l = 1 - mean over tokens of cos(x_l, block_l(x_l));
2. with `target_layers`, removes the least important blocks down to the round's block count, and with
   `target_embd` / `target_head_dim` prunes the residual width / every head's dims to the round's size
   (axes.py; the sizes follow the schedule, allocate.axis_at), by first-order Taylor scores;
3. turns the round's overall sparsity s into per-layer sparsities, higher where a layer matters less
   (allocate.py: s_l = s (1 - amplitude z_l), or fitted to the round's budget with the geometric
   schedule), and keeps, in layer l, the heads and MLP channels of the highest first-order Taylor
   score (structure.py), sizes counted from the layer's original ones; the last round then trims MLP
   channels of the least important layers until the count is <= target.
Between rounds the model trains (AdamW, warmup + cosine over all `steps`; after a prune the optimizer
is rebuilt around the new tensors with Adam's moments of the kept entries sliced over); rounds happen
in the first `prune_until` of the steps and the rest trains the final model. `magnitude_prune` is the
one-shot baseline: the same axes at once, uniform sparsity, |w| scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import tinyml
from tinyml.nn.utils import clip_grad_norm_

from ..schedule import WarmupCosine
from ..trainer import make_optimizer
from .allocate import axis_at, fitted_sizes, layer_sparsities, param_count, round_sparsity, sizes_at, trim_to
from .axes import head_dim_scores, keep_top_dims, prune_blocks, prune_head_dims, prune_width, width_scores
from .model import PrunableGPT
from .structure import group_scores, keep_top, prunable_size, prune_layer

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
    target_layers: int | None = None  # blocks to keep (the least important go); None: all
    target_embd: int | None = None  # residual width at the end; None: the model's
    target_head_dim: int | None = None  # every head's dims at the end; None: the model's
    lr: float = 1e-3
    min_lr: float | None = None
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.99)
    grad_clip: float | None = 1.0


def _batch(sampler):
    x, y = sampler.next_batch()
    return tinyml.tensor(x), tinyml.tensor(y)


def _check_axis(name: str, value, current: int, what: str) -> int:
    if value is None:
        return current
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if value > current:
        raise ValueError(f"{name}={value} is larger than the model's {current} {what}; pruning only removes")
    return value


def final_axes(model, layers=None, embd=None, head_dim=None) -> tuple[int, int, int]:
    """(blocks, residual width, head dim) a run ends at; None keeps the model's; a ValueError naming
    the values for one larger than the model's."""
    cfg = model.config
    return (_check_axis("target_layers", layers, cfg.n_layer, "layers"),
            _check_axis("target_embd", embd, cfg.n_embd, "residual width (n_embd)"),
            _check_axis("target_head_dim", head_dim, min(cfg.layer_head_dim), "head dims"))


def check_target(model, target_params: int, layers=None, embd=None, head_dim=None) -> tuple[int, int]:
    """(parameters the heads and MLP channels hold now, what they may hold at the end) for a model to
    be pruned to `target_params` in all, at the final axes (`layers` blocks, residual width `embd`,
    head dim `head_dim`; None keeps the model's). A ValueError naming the numbers when the target is
    larger than the model or below what pruning can reach (one head and one MLP channel a layer)."""
    total = model.num_parameters()
    if isinstance(target_params, bool) or not isinstance(target_params, int) or target_params <= 0:
        raise ValueError(f"target_params must be a positive int, got {target_params!r}")
    if target_params > total:
        raise ValueError(f"the target of {target_params:,} parameters is larger than the model "
                         f"({total:,} parameters); pruning only removes parameters")
    L, C, D = final_axes(model, layers, embd, head_dim)
    cfg = model.config
    dims = sorted(min(d, D) for d in cfg.layer_head_dim)[:L]  # the floor: the smallest blocks stay
    fixed = param_count(cfg, C, [(0, 0, d) for d in dims])
    floor = param_count(cfg, C, [(1, 1, d) for d in dims])
    if target_params < floor:
        axes = "" if (L, C, D) == (cfg.n_layer, cfg.n_embd, min(cfg.layer_head_dim)) else (
            f" at {L} layers, residual width {C} and head dim {D}")
        raise ValueError(f"the target of {target_params:,} parameters is below what structured pruning "
                         f"can reach{axes}: {floor:,} ({fixed:,} in embeddings, norms and output biases, "
                         f"and one head and one MLP channel in each of {L} layers)")
    return prunable_size(cfg)[0], target_params - fixed


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


def _calibrate(model, batches) -> None:
    """Gradients of the loss summed over `batches`, for the Taylor scores."""
    model.zero_grad()
    for x, y in batches:
        model(x, y)[1].backward()


def _drop_blocks(model, n_keep: int, importance: np.ndarray, original: list, states=None):
    """Remove all but the `n_keep` most important blocks (by `importance`, 1 - cos); returns the kept
    blocks' importances and original sizes."""
    L = model.config.n_layer
    if n_keep >= L:
        return importance, original
    keep = np.sort(np.argsort(importance, kind="stable")[L - n_keep:])
    prune_blocks(model, keep, states)
    return importance[keep], [original[i] for i in keep]


def _score_and_slice(model, axes, kind: str, states=None) -> list:
    """Residual width and head dims down to `axes`, by scores taken from the current gradients (or
    weights); returns each layer's (head, channel) scores, taken before any slicing."""
    _, C, D = axes
    cfg = model.config
    scores = [group_scores(model, layer, kind) for layer in range(cfg.n_layer)]
    width = keep_top(width_scores(model, kind), C) if C < cfg.n_embd else None
    dims = [head_dim_scores(model, layer, kind) if D < cfg.layer_head_dim[layer] else None
            for layer in range(cfg.n_layer)]
    model.zero_grad()
    if width is not None:
        prune_width(model, width, states)
    for layer, s in enumerate(dims):
        if s is not None:
            prune_head_dims(model, layer, keep_top_dims(s[0], D), keep_top_dims(s[1], D), states)
    return scores


def _apply_sizes(model, heads, channels, scores, states=None) -> None:
    for layer, (h, c) in enumerate(zip(heads, channels)):
        head_s, chan_s = scores[layer]
        prune_layer(model, layer, heads=keep_top(head_s, h) if h < len(head_s) else None,
                    channels=keep_top(chan_s, c) if c < len(chan_s) else None, states=states)


def _fixed(model) -> int:
    """Parameters outside the heads and MLP channels (embeddings, norms, output biases)."""
    return model.num_parameters() - prunable_size(model.config)[0]


def prune_round(model: PrunableGPT, batches, sparsity: float, original, cfg: AdaptPruneConfig,
                budget: int | None = None, states: dict | None = None, axes=None):
    """One Adapt-Pruner round at overall sparsity `sparsity` of the original head and channel sizes
    `original` (a list of (heads, channels) per layer), after pruning the blocks, residual width and
    head dims to `axes` (None: as they are). With `budget` (total parameters), heads and channels are
    trimmed until the model fits it; with cfg.schedule "geometric" they are fitted to it in the shape
    of the per-layer sparsities instead of taken at `sparsity`. `states` (optimizer state by parameter
    id) follows the pruned tensors. Returns (every block's importance as measured before the round,
    the kept blocks' original sizes)."""
    measured = layer_importance(model, batches)
    mc = model.config
    axes = axes or (mc.n_layer, mc.n_embd, min(mc.layer_head_dim))
    importance, original = _drop_blocks(model, axes[0], measured, original, states)
    _calibrate(model, batches)
    scores = _score_and_slice(model, axes, "taylor", states)
    hc_budget = None if budget is None else budget - _fixed(model)
    if cfg.schedule == "geometric":
        heads, chans = fitted_sizes(mc, original, importance, cfg.amplitude, hc_budget)
    else:
        heads, chans = sizes_at(mc, original, layer_sparsities(importance, sparsity, cfg.amplitude))
    if budget is not None:
        trim_to(mc, heads, chans, hc_budget, weights=1.0 - importance + 1e-6, cap=list(mc.layer_inner))
    _apply_sizes(model, heads, chans, scores, states)
    return measured, original


def magnitude_prune(model, target_params: int, layers=None, embd=None, head_dim=None,
                    batches=None) -> PrunableGPT:
    """One-shot baseline: to <= target_params in one go, with the same sparsity in every layer and
    groups kept by weight magnitude. `layers` / `embd` / `head_dim`: the blocks, residual width and
    head dim to prune to as well (None keeps them); removing blocks ranks them by layer importance on
    `batches` (magnitude says nothing about a whole block's role)."""
    model = PrunableGPT.from_gpt(model)
    check_target(model, target_params, layers, embd, head_dim)
    axes = final_axes(model, layers, embd, head_dim)
    if axes[0] < model.config.n_layer:
        if not batches:
            raise ValueError(f"magnitude_prune to {axes[0]} of {model.config.n_layer} layers needs `batches` "
                             "to rank the blocks by layer importance")
        _drop_blocks(model, axes[0], layer_importance(model, batches), [None] * model.config.n_layer)
    scores = _score_and_slice(model, axes, "magnitude")
    mc = model.config
    budget = target_params - _fixed(model)
    ratio = budget / prunable_size(mc)[0]
    heads = [max(1, round(h * ratio)) for h in mc.layer_heads]
    chans = [max(1, round(c * ratio)) for c in mc.layer_inner]
    trim_to(mc, heads, chans, budget, weights=np.ones(mc.n_layer), cap=list(mc.layer_inner))
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
    after, layer importances, the loss on the round's calibration batches (training data) right before
    and right after it, residual width, per-layer heads, head dims and MLP widths)."""
    round_sparsity(1, 1, 0.0, cfg.schedule)  # an unknown schedule fails here, before any training
    if not (cfg.rounds >= 1 and 0 < cfg.prune_until <= 1 and cfg.steps >= cfg.rounds):
        raise ValueError(f"adapt_prune needs rounds >= 1, 0 < prune_until <= 1 and steps >= rounds; got "
                         f"rounds={cfg.rounds}, prune_until={cfg.prune_until}, steps={cfg.steps}")
    model = PrunableGPT.from_gpt(model)
    mc = model.config
    now, _ = check_target(model, cfg.target_params, cfg.target_layers, cfg.target_embd, cfg.target_head_dim)
    start_axes = (mc.n_layer, mc.n_embd, min(mc.layer_head_dim))
    end_axes = final_axes(model, cfg.target_layers, cfg.target_embd, cfg.target_head_dim)
    fixed0 = _fixed(model)
    final_sparsity = 1.0 - (cfg.target_params - fixed0) / now  # of the heads and channels, at today's axes
    original = list(zip(mc.layer_heads, mc.layer_inner))
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
        axes = tuple(axis_at(k + 1, cfg.rounds, a, b, cfg.schedule) for a, b in zip(start_axes, end_axes))
        # the geometric schedule fits every round to its budget; the linear one only the last
        fit = cfg.target_params if last else (
            fixed0 + round(now * (1.0 - sparsity)) if cfg.schedule == "geometric" else None)
        before = evaluate(model, _Fixed(batches), len(batches))
        importance, original = prune_round(model, batches, sparsity, original, cfg, budget=fit, states=states,
                                           axes=axes)
        opt, sched = _optimizer(model, cfg, step, states)
        record = {"round": k + 1, "step": step, "params": model.num_parameters(),
                  "importance": [round(float(v), 5) for v in importance],
                  "loss_before": round(before, 5),
                  "loss_after": round(evaluate(model, _Fixed(batches), len(batches)), 5),
                  "n_embd": mc.n_embd, "layer_heads": list(mc.layer_heads),
                  "layer_head_dim": list(mc.layer_head_dim), "layer_inner": list(mc.layer_inner)}
        history.append(record)
        if log:
            log(f"round {k + 1}/{cfg.rounds} at step {step}: {record['params']:,} parameters, calibration "
                f"loss {before:.3f} -> {record['loss_after']:.3f}; width {mc.n_embd}, heads {mc.layer_heads} "
                f"of {mc.layer_head_dim}, MLP {mc.layer_inner}")
    train_steps(model, train_sampler, cfg, step, cfg.steps, opt, sched)
    return model, history


class _Fixed:
    """A sampler over a fixed list of (x, y) tensor batches, for evaluate."""

    def __init__(self, batches):
        self.batches, self.i = batches, 0

    def next_batch(self):
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        return x.numpy(), y.numpy()
