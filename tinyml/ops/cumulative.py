"""cumsum and cumprod along one dim (re-exported by reduce.py).

    cumsum:  y_i = sum_{j<=i} x_j     dx_k = sum_{j>=k} g_j   (a reversed cumsum, itself differentiable)
    cumprod: y_i = prod_{j<=i} x_j    dx_k = sum_{j>=k} g_j prod_{i<=j, i!=k} x_i
The cumprod gradient is computed without dividing by x, so it is exact where x has zeros (see
the `cumprod_backward` kernel). Integer and bool inputs accumulate in int64, as in PyTorch.
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from . import _reduce_grad
from ._broadcast import complex_unsupported
from ._reduce_dims import wrap_dim

__all__ = ["cumprod", "cumsum"]


class CumSum(Function):
    """Running sum along dim; reverse=True sums from the end (the gradient of the forward one)."""

    @staticmethod
    def forward(ctx, x, dim, reverse):
        ctx.dim, ctx.reverse = dim, reverse
        return run("cumsum", x, dim, x.dtype.np, reverse)

    @staticmethod
    def backward(ctx, g):
        return CumSum.apply(g, ctx.dim, not ctx.reverse), None, None


class CumProd(Function):
    @staticmethod
    def forward(ctx, x, dim):
        y = run("cumprod", x, dim, x.dtype.np)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: y must depend on x for higher derivatives
            return _cumprod_grad(x, CumProd.apply(x, ctx.dim), g, ctx.dim), None
        return run("cumprod_backward", x, y, g, ctx.dim), None


def _cumprod_grad(x: Tensor, y: Tensor, g: Tensor, dim: int) -> Tensor:
    """The cumprod_backward kernel's formula from differentiable ops: (reversed cumsum of g y) / x
    (x without zeros)."""
    _reduce_grad.refuse_zeros(x, "cumprod")
    return CumSum.apply(g * y, dim, True) / x


def _prepare(name: str, input: Tensor, dim, dtype) -> tuple[Tensor, int]:
    if dim is None:
        raise TypeError(f"{name}() missing required argument 'dim'")
    if input.dtype.is_complex:  # the gradients are the real formulas
        raise complex_unsupported(name, input.dtype)
    if dtype is None:
        dtype = input.dtype if input.dtype.is_floating_point else _dt.int64
    else:
        dtype = _dt.as_dtype(dtype)
    if dtype is not input.dtype:
        input = input.to(dtype)
    return input, wrap_dim(dim, input.ndim, input.shape, name)


def cumsum(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running sum along `dim`; integer/bool inputs give int64 unless dtype= says otherwise."""
    x, d = _prepare("cumsum", input, dim, dtype)
    return CumSum.apply(x, d, False)


def cumprod(input: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running product along `dim`; integer/bool inputs give int64 unless dtype= says otherwise."""
    x, d = _prepare("cumprod", input, dim, dtype)
    return CumProd.apply(x, d)
