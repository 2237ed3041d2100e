"""Adam and AdamW (torch.optim.Adam / AdamW), optionally AMSGrad and maximize.

    m <- beta1 m + (1 - beta1) g            v <- beta2 v + (1 - beta2) g^2
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    Adam: g <- g + wd p first (L2);  AdamW: p <- p (1 - lr wd) first (decoupled)

One fused `adam_step` kernel call per (device, dtype, step) bucket of a parameter group
(`adam_amsgrad_step` with amsgrad=True). State per parameter, as torch: "step" (a float32 0-d
tensor), "exp_avg", "exp_avg_sq" (and "max_exp_avg_sq").
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .. import ops
from ..autograd import enable_grad
from ..backends import dispatch
from ..tensor import Tensor
from ._line_aligned import zeros_at_line_of
from .optimizer import Optimizer, _bucket, _check_grad

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    _decoupled = False

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool | None = None) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._decoupled
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _init_state(self, p: Tensor, amsgrad: bool) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = ops.tensor(0.0)
            state["exp_avg"] = zeros_at_line_of(p)  # at p's offset in a cache line: _line_aligned.py
            state["exp_avg_sq"] = zeros_at_line_of(p)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = zeros_at_line_of(p)
        return state

    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            amsgrad = group["amsgrad"]
            beta1, beta2 = group["betas"]
            steps = {}
            params = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state or (amsgrad and "max_exp_avg_sq" not in state):
                    state = self._init_state(p, amsgrad)
                # step lives on the host (a cpu tensor, as in torch): reading it never syncs a device.
                # A host 0-d step counts up in place, as torch's `step_t += 1`: no new tensor per step.
                prev = state["step"]
                host = prev._data if isinstance(prev, Tensor) else None
                if isinstance(host, np.ndarray) and host.shape == ():
                    n = int(host) + 1
                    host[()] = n
                    prev._version[0] += 1
                else:
                    n = int(prev.item() if isinstance(prev, Tensor) else prev) + 1
                    state["step"] = ops.tensor(float(n))
                steps[id(p)] = n
                params.append(p)
            for (dev_type, _, _, step), ps in _bucket(params, lambda p: steps[id(p)]).items():
                grads = [(ops.neg(_check_grad(p)) if group["maximize"] else _check_grad(p))._data for p in ps]
                states = [self.state[p] for p in ps]
                args = [[p._data for p in ps], grads, [s["exp_avg"]._data for s in states],
                        [s["exp_avg_sq"]._data for s in states]]
                if amsgrad:
                    args.append([s["max_exp_avg_sq"]._data for s in states])
                dispatch("adam_amsgrad_step" if amsgrad else "adam_step", dev_type)(
                    *args, float(group["lr"]), beta1, beta2, group["eps"], group["weight_decay"], step,
                    bool(group["decoupled_weight_decay"]))
                for p, s in zip(ps, states):
                    p._version[0] += 1  # the kernel wrote these storages in place
                    s["exp_avg"]._version[0] += 1
                    s["exp_avg_sq"]._version[0] += 1
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p <- p (1 - lr wd) before the update."""

    _decoupled = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
