"""max, min, amax, amin, argmax, argmin (re-exported by reduce.py).

    amax / amin, and max() / min() without dim:  dx = g [x == y] / #ties   (ties share g evenly)
    max / min along dim:                          dx = g at the returned index, 0 elsewhere
Both are PyTorch's gradients. With a `dim`, max and min return a (values, indices) named tuple
like torch.return_types.max; `max(a, b)` with a tensor `b` is the elementwise `maximum`.
NaN is the max and the min of any slice that holds one; indices point at the first extremum.
"""
from __future__ import annotations

from collections import namedtuple

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from . import _reduce_grad
from ._broadcast import complex_unsupported
from ._reduce_dims import check_nonempty, reduce_dims, unsqueeze_reduced, wrap_dim
from .pointwise import maximum, minimum

__all__ = ["amax", "amin", "argmax", "argmin", "max", "min"]

# torch.return_types.max / .min: a tuple with .values and .indices
max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])


class AMax(Function):
    """amax (is_max) or amin over dims; the gradient is split evenly among ties."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, is_max):
        y = run("amax" if is_max else "amin", x, dims, keepdim)
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        y = unsqueeze_reduced(y, x.shape, ctx.dims, ctx.keepdim)
        g = unsqueeze_reduced(g, x.shape, ctx.dims, ctx.keepdim)
        if is_grad_enabled():  # create_graph: a gradient differentiable in g
            return _reduce_grad.amax_grad(x, y, g, ctx.dims), None, None, None
        return run("amax_backward", x, y, g, ctx.dims), None, None, None


class MaxDim(Function):
    """(values, indices) of the max (is_max) or min along one dim; the gradient goes to the index."""

    @staticmethod
    def forward(ctx, x, dim, keepdim, is_max):
        values, indices = run("max_dim" if is_max else "min_dim", x, dim, keepdim)
        ctx.save_for_backward(indices)
        ctx.in_shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        return values, indices

    @staticmethod
    def backward(ctx, g, _g_indices=None):
        (indices,) = ctx.saved_tensors
        dims = (ctx.dim,) if ctx.in_shape else ()
        g = unsqueeze_reduced(g, ctx.in_shape, dims, ctx.keepdim)
        indices = unsqueeze_reduced(indices, ctx.in_shape, dims, ctx.keepdim)
        if is_grad_enabled():
            return _reduce_grad.value_selecting_grad(g, indices, ctx.dim, ctx.in_shape), None, None, None
        return run("value_selecting_backward", g, indices, ctx.dim, ctx.in_shape), None, None, None


def _extremum(name: str, input: Tensor, dim, keepdim: bool, other, is_max: bool):
    if input.dtype.is_complex:  # C has no order
        raise complex_unsupported(name, input.dtype)
    if isinstance(dim, Tensor):  # max(a, b): the elementwise form
        other, dim = dim, None
    if other is not None:
        if keepdim:
            raise TypeError(f"{name}(input, other) takes no keepdim")
        return (maximum if is_max else minimum)(input, other)
    if dim is None:
        if keepdim:
            raise TypeError(f"{name}(): keepdim=True needs a dim; use amax/amin for a keepdim reduction over "
                            f"all dims")
        check_nonempty(input, (), name, dim_given=False)
        return AMax.apply(input, tuple(range(input.ndim)), False, is_max)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{name}(): dim must be an int, got {dim!r}; use a{name} to reduce over several dims")
    d = wrap_dim(dim, input.ndim, input.shape, name)
    if input.ndim:
        check_nonempty(input, (d,), name, dim_given=True)
    values, indices = MaxDim.apply(input, d, keepdim, is_max)
    return (max_result if is_max else min_result)(values, indices)


def max(input: Tensor, dim=None, keepdim: bool = False, *, other: Tensor | None = None):
    """max(x): the largest element (0-d); max(x, dim, keepdim): (values, indices) along dim;
    max(x, other): elementwise maximum (tinyml.maximum)."""
    return _extremum("max", input, dim, keepdim, other, True)


def min(input: Tensor, dim=None, keepdim: bool = False, *, other: Tensor | None = None):
    """min(x), min(x, dim, keepdim) -> (values, indices), or the elementwise min(x, other)."""
    return _extremum("min", input, dim, keepdim, other, False)


def _amax(name: str, input: Tensor, dim, keepdim: bool, is_max: bool) -> Tensor:
    if input.dtype.is_complex:
        raise complex_unsupported(name, input.dtype)
    dims = reduce_dims(dim, input, name)
    check_nonempty(input, dims, name, dim_given=True)
    return AMax.apply(input, dims, keepdim, is_max)


def amax(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """max over `dim` (an int or tuple; () or None: all dims). Gradient split evenly among ties."""
    return _amax("amax", input, dim, keepdim, True)


def amin(input: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """min over `dim` (an int or tuple; () or None: all dims). Gradient split evenly among ties."""
    return _amax("amin", input, dim, keepdim, False)


def _arg(name: str, input: Tensor, dim, keepdim: bool) -> Tensor:
    if input.dtype.is_complex:
        raise complex_unsupported(name, input.dtype)
    if input.dtype is _dt.bool_:
        raise RuntimeError(f"{name}(): does not support bool input; convert with .int() or .float() first")
    if dim is None:
        check_nonempty(input, (), name, dim_given=False)
        return run(name, input, None, keepdim)
    d = wrap_dim(dim, input.ndim, input.shape, name)
    if input.ndim:
        check_nonempty(input, (d,), name, dim_given=True)
    return run(name, input, d, keepdim)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """int64 index of the first max along `dim` (None: into the flattened input)."""
    return _arg("argmax", input, dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """int64 index of the first min along `dim` (None: into the flattened input)."""
    return _arg("argmin", input, dim, keepdim)
