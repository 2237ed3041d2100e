"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an
interpolated momentum, with decoupled weight decay. torch has no Lion; this is the paper's Algorithm 2.

    p <- p (1 - lr wd)
    c = beta1 m + (1 - beta1) g;   p <- p - lr sign(c)
    m <- beta2 m + (1 - beta2) g

Plain tensor math (no fused kernel). State: "exp_avg" (m).
"""
from __future__ import annotations

from collections.abc import Iterable

from .. import ops
from ..tensor import Tensor
from ._tensor_math import TensorMathOptimizer, check_betas, check_hyper

__all__ = ["Lion"]


class Lion(TensorMathOptimizer):
    def __init__(self, params: Iterable, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        check_hyper(lr=lr, weight_decay=weight_decay)
        check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                      maximize=maximize))

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        if not state:
            state["exp_avg"] = ops.zeros_like(p)
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if wd != 0:
            p.copy_(p * (1 - lr * wd))
        exp_avg = state["exp_avg"]
        update = exp_avg * beta1 + grad * (1 - beta1)
        p.copy_(p - update.sign() * lr)
        state["exp_avg"] = exp_avg * beta2 + grad * (1 - beta2)
