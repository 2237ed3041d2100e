"""Adamax (torch.optim.Adamax): Adam with the infinity norm in place of the second moment.

    g <- g + wd p;   m <- m + (1 - beta1)(g - m);   u <- max(beta2 u, |g| + eps)
    p <- p - lr / (1 - beta1^t) * m / u

Plain tensor math (no fused kernel). State as torch: "step", "exp_avg", "exp_inf".
"""
from __future__ import annotations

from collections.abc import Iterable

from .. import ops
from ..tensor import Tensor
from ._tensor_math import TensorMathOptimizer, check_betas, check_hyper, next_step

__all__ = ["Adamax"]


class Adamax(TensorMathOptimizer):
    def __init__(self, params: Iterable, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        check_hyper(lr=lr, eps=eps, weight_decay=weight_decay)
        check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        if not state:
            state["step"] = ops.tensor(0.0)
            state["exp_avg"] = ops.zeros_like(p)
            state["exp_inf"] = ops.zeros_like(p)
        step = next_step(state)
        beta1, beta2 = group["betas"]
        if group["weight_decay"] != 0:
            grad = grad + p * group["weight_decay"]
        exp_avg = state["exp_avg"]
        exp_avg = exp_avg + (grad - exp_avg) * (1 - beta1)
        exp_inf = ops.maximum(state["exp_inf"] * beta2, grad.abs() + group["eps"])
        state["exp_avg"], state["exp_inf"] = exp_avg, exp_inf
        clr = group["lr"] / (1 - beta1 ** step)
        p.copy_(p - exp_avg / exp_inf * clr)
