"""RMSprop (torch.optim.RMSprop), optionally centered, with momentum, weight decay and maximize.

    g <- g + wd p                          v <- alpha v + (1 - alpha) g^2
    centered: m <- m + (1 - alpha)(g - m),  avg = sqrt(v - m^2) + eps;   else avg = sqrt(v) + eps
    momentum > 0: b <- momentum b + g / avg,  p <- p - lr b;             else p <- p - lr g / avg

Plain tensor math (no fused kernel). State as torch: "step", "square_avg" (+ "momentum_buffer",
"grad_avg").
"""
from __future__ import annotations

from collections.abc import Iterable

from .. import ops
from ..tensor import Tensor
from ._tensor_math import TensorMathOptimizer, check_hyper, next_step

__all__ = ["RMSprop"]


class RMSprop(TensorMathOptimizer):
    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        check_hyper(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        if not state:
            state["step"] = ops.tensor(0.0)
            state["square_avg"] = ops.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = ops.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = ops.zeros_like(p)
        next_step(state)
        alpha, momentum = group["alpha"], group["momentum"]
        if group["weight_decay"] != 0:
            grad = grad + p * group["weight_decay"]
        square_avg = state["square_avg"] * alpha + grad * grad * (1 - alpha)
        state["square_avg"] = square_avg
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg = grad_avg + (grad - grad_avg) * (1 - alpha)
            state["grad_avg"] = grad_avg
            avg = (square_avg - grad_avg * grad_avg).sqrt()
        else:
            avg = square_avg.sqrt()
        avg = avg + group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"] * momentum + grad / avg
            state["momentum_buffer"] = buf
            p.copy_(p - buf * group["lr"])
        else:
            p.copy_(p - grad / avg * group["lr"])
