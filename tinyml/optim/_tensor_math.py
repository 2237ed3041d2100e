"""Shared loop of the optimizers written as plain tensor math (RMSprop, Adagrad, Adamax, NAdam, RAdam,
Lion): no fused kernel, so they run on every device through the ordinary ops, under no_grad.

Each step reads a parameter's gradient (negated when maximize), computes the new value out of place
and writes it into the parameter's storage with copy_ (views of the parameter see it, its version
counter moves, as torch's in-place update does).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from .. import ops
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, _check_grad

__all__ = ["TensorMathOptimizer", "check_betas", "check_hyper", "next_step"]


def check_hyper(**values: float) -> None:
    """torch's validation: every named hyperparameter must be >= 0, with torch's messages."""
    for name, value in values.items():
        if not 0.0 <= value:
            label = {"lr": "learning rate", "eps": "epsilon value"}.get(name, f"{name} value")
            raise ValueError(f"Invalid {label}: {value}")


def check_betas(betas) -> None:
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")


class TensorMathOptimizer(Optimizer):
    """Subclasses implement `_update(p, grad, state, group)`, called once per parameter with a gradient."""

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    def _params_with_grad(self, group: dict) -> Iterator[tuple[Tensor, Tensor]]:
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = _check_grad(p)
            yield p, (-grad if group.get("maximize", False) else grad)

    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p, grad in self._params_with_grad(group):
                    self._update(p, grad.detach(), self.state[p], group)
        return loss


def next_step(state: dict) -> int:
    """Advance the float32 0-d "step" tensor torch keeps in the state; returns the new step count."""
    step = int(state["step"].item()) + 1
    state["step"] = ops.tensor(float(step))
    return step
