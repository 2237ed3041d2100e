"""Adagrad (torch.optim.Adagrad) with lr_decay, initial_accumulator_value, weight decay and maximize.

    g <- g + wd p;   clr = lr / (1 + (t - 1) lr_decay);   s <- s + g^2;   p <- p - clr g / (sqrt(s) + eps)

Plain tensor math (no fused kernel). State as torch: "step", "sum" (starts at initial_accumulator_value).
"""
from __future__ import annotations

from collections.abc import Iterable

from .. import ops
from ..tensor import Tensor
from ._tensor_math import TensorMathOptimizer, check_hyper, next_step

__all__ = ["Adagrad"]


class Adagrad(TensorMathOptimizer):
    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *,
                 maximize: bool = False) -> None:
        check_hyper(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                    initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))
        # torch creates the state at construction, so state_dict() lists every parameter from the start
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = ops.tensor(0.0)
                self.state[p]["sum"] = ops.full_like(p, group["initial_accumulator_value"])

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        if not state:
            state["step"] = ops.tensor(0.0)
            state["sum"] = ops.full_like(p, group["initial_accumulator_value"])
        step = next_step(state)
        if group["weight_decay"] != 0:
            grad = grad + p * group["weight_decay"]
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        state["sum"] = state["sum"] + grad * grad
        std = state["sum"].sqrt() + group["eps"]
        p.copy_(p - grad / std * clr)
