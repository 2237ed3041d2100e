"""Empirical Fisher information of the backbone's weights, for Ladder Side-Tuning's pruned init.

    F(w) = (1 / N) sum_n (dL_n / dw)^2          over N batches, elementwise, for each weight matrix

As in LST (Sung et al. 2022, section 3.3, following Molchanov et al. 2019 and Liang et al. 2021)
the squared gradients of the task loss stand in for the diagonal of the Fisher matrix; summed over
a structure (a residual channel, a head dim, an MLP unit) they score it, and the side network
keeps the top-scoring ones (ladder_prune.py ranks by these instead of |w|). The backbone is
frozen when LST is injected: its weights are given requires_grad for the N backward passes only,
and their flags and .grad are put back afterwards.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

import tinyml
import tinyml.nn as nn


def default_loss(model: nn.Module, batch):
    """model(*batch)'s loss: the second item of a (logits, loss) output (tinyml's GPT and Llama with
    targets), a `.loss` attribute, or a 0-d tensor output."""
    out = model(*batch) if isinstance(batch, (tuple, list)) else model(batch)
    loss = out[1] if isinstance(out, tuple) and len(out) > 1 else getattr(out, "loss", out)
    if not isinstance(loss, tinyml.Tensor) or loss.ndim != 0:
        got = tuple(loss.shape) if isinstance(loss, tinyml.Tensor) else type(loss).__name__
        raise TypeError(f"Fisher pruning: {type(model).__name__}(*batch) gave no scalar loss (got {got}); "
                        "pass batches with targets (idx, targets) or LSTConfig(fisher_loss=fn(model, batch))")
    return loss


def fisher_information(model: nn.Module, weights: list, batches: Iterable,
                       loss_fn: Callable | None = None) -> dict[int, np.ndarray]:
    """{id(w): F(w)} (float32, w's shape) for each tensor in `weights`, from model's loss on `batches`."""
    loss_fn = loss_fn or default_loss
    state = [(w, w.requires_grad, w.grad) for w in weights]
    total = {id(w): np.zeros(tuple(w.shape), dtype=np.float64) for w in weights}
    n = 0
    try:
        for w in weights:
            w.requires_grad_(True)
        for batch in batches:
            for w in weights:
                w.grad = None
            loss = loss_fn(model, batch)
            loss.backward()
            for w in weights:
                if w.grad is not None:  # None: this weight does not reach the loss
                    g = w.grad.float().numpy().astype(np.float64)
                    total[id(w)] += g * g
            n += 1
    finally:
        for w, flag, grad in state:
            w.requires_grad_(flag)
            w.grad = grad
    if n == 0:
        raise ValueError("Fisher pruning needs at least one batch; LSTConfig(fisher_batches=...) was empty")
    return {k: (v / n).astype(np.float32) for k, v in total.items()}
