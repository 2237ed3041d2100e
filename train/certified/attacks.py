"""Projected gradient descent (Madry et al. 2018) in a box: the attack behind PGD accuracy and SABR centres.

    x_{k+1} = clip_[lower, upper](x_k + alpha * sign(grad_x CE(model(x_k), y)))

from a uniformly random start in the box; the iterate with the highest loss per sample is kept (so more steps
never weaken the attack).
"""
from __future__ import annotations

import numpy as np

import tinyml
import tinyml.nn.functional as F
from tinyml.nn import Module


def pgd_attack(model: Module, x: tinyml.Tensor, y: tinyml.Tensor, lower: tinyml.Tensor, upper: tinyml.Tensor,
               steps: int = 10, step_size: float | None = None, random_start: bool = True,
               generator: np.random.Generator | None = None) -> tinyml.Tensor:
    """The input in [lower, upper] that PGD finds to maximise the cross-entropy; no grad attached.

    step_size: alpha; by default 2.5 * (box half-width) / steps, the usual choice.
    """
    if steps < 1:
        raise ValueError(f"PGD needs steps >= 1, got {steps}")
    lo, hi = lower.detach().numpy(), upper.detach().numpy()
    if lo.shape != tuple(x.shape) or hi.shape != tuple(x.shape):
        raise ValueError(f"the PGD box {lo.shape} / {hi.shape} must have the input's shape {tuple(x.shape)}")
    if step_size is None:
        step_size = 2.5 * float(np.max(hi - lo)) / 2 / steps
    rng = generator if generator is not None else np.random.default_rng(0)
    start = rng.uniform(lo, hi).astype(lo.dtype) if random_start else x.detach().numpy().copy()
    current = np.clip(start, lo, hi)
    best, best_loss = current.copy(), np.full(len(current), -np.inf)
    was_training = model.training
    model.eval()
    try:
        for step in range(steps + 1):
            xt = tinyml.tensor(current, requires_grad=True)
            losses = F.cross_entropy(model(xt), y, reduction="none")  # (B,)
            per_sample = losses.detach().numpy()
            better = per_sample > best_loss
            best[better], best_loss[better] = current[better], per_sample[better]
            if step == steps:
                break
            (grad,) = tinyml.autograd.grad(losses.sum(), [xt])
            current = np.clip(current + step_size * np.sign(grad.numpy()), lo, hi).astype(lo.dtype)
    finally:
        model.train(was_training)
    return tinyml.tensor(best)
