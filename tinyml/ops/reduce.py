"""Reductions over `dim` (an int, a tuple, or None for all) with `keepdim`.

    sum:   dx = expand(g, x.shape)          mean: dx = expand(g, x.shape) / n
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import Function
from ..tensor import Tensor, _wrap_dim
from ._dispatch import run

__all__ = ["sum", "mean"]


def _dims(dim, ndim: int) -> tuple:
    """`dim` as a sorted tuple of non-negative dims; None (or ()) means all."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = tuple(sorted({_wrap_dim(d, ndim) for d in dims}))
    if len(out) != len(dims):
        raise RuntimeError(f"dim {dim} appears multiple times in the list of dims")
    return out


def _unsqueeze_reduced(g: Tensor, dims: tuple, keepdim: bool, in_ndim: int) -> Tensor:
    """Put back the reduced dims of a gradient as size 1, so it broadcasts against the input."""
    if keepdim or not dims:
        return g
    shape = list(g.shape)
    for d in dims:
        shape.insert(d, 1)
    return g.reshape(shape) if in_ndim else g


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.in_shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        return run("sum", x, dims, keepdim, dtype.np)

    @staticmethod
    def backward(ctx, g):
        g = _unsqueeze_reduced(g, ctx.dims, ctx.keepdim, len(ctx.in_shape))
        return g.expand(ctx.in_shape), None, None, None


def sum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over `dim`; integer and bool inputs sum to int64, as in PyTorch."""
    if dtype is None:
        dtype = _dt.int64 if input.dtype.category < 2 else input.dtype
    dtype = _dt.as_dtype(dtype)
    if dtype is not input.dtype:
        input = input.to(dtype)
    return Sum.apply(input, _dims(dim, input.ndim), keepdim, dtype)


def mean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    if dtype is not None:
        input = input.to(dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got "
                           f"{input.dtype}; pass dtype= or convert with .float()")
    dims = _dims(dim, input.ndim)
    n = 1
    for d in dims:
        n *= input.shape[d]
    return sum(input, dims, keepdim) / n if n else sum(input, dims, keepdim) * float("nan")
