"""Softmax family: fused softmax and log_softmax over one dimension, each saving only its output.

    softmax(x)_i     = exp(x_i) / sum_j exp(x_j)
    log_softmax(x)_i = x_i - log sum_j exp(x_j)
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor, _wrap_dim
from ._broadcast import as_float

__all__ = ["log_softmax", "softmax"]


class Softmax(Function):
    """y = softmax(x) along dim; dx = y (g - sum(g y)), the sum along dim."""

    @staticmethod
    def forward(ctx, x, dim):
        y = run("softmax_forward", x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            return y * (g - (g * y).sum(ctx.dim, keepdim=True)), None
        return run("softmax_backward", y, g, ctx.dim), None


class LogSoftmax(Function):
    """y = log_softmax(x) along dim; dx = g - exp(y) sum(g), the sum along dim."""

    @staticmethod
    def forward(ctx, x, dim):
        y = run("log_softmax_forward", x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            return g - y.exp() * g.sum(ctx.dim, keepdim=True), None
        return run("log_softmax_backward", y, g, ctx.dim), None


def _softmax_args(input: Tensor, dim, dtype) -> tuple[Tensor, int]:
    if dtype is not None:
        input = input.to(_dt.as_dtype(dtype))
    if dim is None:
        raise TypeError("softmax: dim must be given (implicit dim is deprecated in PyTorch too)")
    return as_float(input), (_wrap_dim(dim, input.ndim) if input.ndim else 0)


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """exp(x_i) / sum_j exp(x_j) along `dim`."""
    x, d = _softmax_args(input, dim, dtype)
    return Softmax.apply(x, d) if x.ndim else x * 0 + 1


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """x_i - log sum_j exp(x_j) along `dim`."""
    x, d = _softmax_args(input, dim, dtype)
    return LogSoftmax.apply(x, d) if x.ndim else x * 0
