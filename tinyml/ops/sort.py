"""Sorting and order statistics along one dim: sort, argsort, msort, topk, kthvalue, median,
nanmedian.

Every kernel orders a row by one total order (backends/reference/sort.py): NaN is the largest
value (as in PyTorch), -0.0 equals 0.0, and equal values keep their index order, so a sort is
always stable and all backends return the same indices. Values selected along a dim have the
gradient of an index selection:

    (values, indices) = f(x) along dim      dx = zeros_like(x).scatter(dim, indices, g)

(indices are distinct within a row, so scatter and scatter-add agree; scatter's backward is a
gather, so second derivatives work). median() / nanmedian() over all elements share the
incoming gradient evenly among the elements equal to the result, as PyTorch's
evenly_distribute_backward does (NaN counts as equal to a NaN result).

    median(x)     the lower median: element (m - 1) // 2 of the ascending order, m = #non-NaN;
                  NaN if the row holds a NaN (index: the first NaN)
    nanmedian(x)  the same ignoring NaNs (NaN only for an all-NaN row)
"""
from __future__ import annotations

from collections import namedtuple

from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from . import _reduce_grad
from ._broadcast import complex_unsupported
from ._reduce_dims import wrap_dim
from .creation import full, zeros
from .scatter import scatter

__all__ = ["argsort", "kthvalue", "median", "msort", "nanmedian", "sort", "topk"]

# torch.return_types.<name>: tuples with .values and .indices
sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])
kthvalue_result = namedtuple("kthvalue", ["values", "indices"])
median_result = namedtuple("median", ["values", "indices"])
nanmedian_result = namedtuple("nanmedian", ["values", "indices"])


def _selected(ctx, x: Tensor, dim: int, result: tuple, reduced: bool) -> tuple:
    """result = (values, indices) of x along dim, returned after saving what the backward needs
    (`reduced`: the dim is removed from them)."""
    values, indices = result
    ctx.in_shape, ctx.dim, ctx.reduced = x.shape, dim, reduced
    ctx.save_for_backward(indices)
    return values, indices


class _SelectAlongDim:
    """The backward of a Function whose (values, indices) pick elements of x along a dim (its forward
    ends in `_selected`): g goes to the saved indices of a zero tensor of x's shape (the other
    arguments are ints and flags, with no gradient). A mixin, not a Function: no op of its own."""

    @staticmethod
    def backward(ctx, g, _g_indices=None):
        (indices,) = ctx.saved_tensors
        if ctx.reduced:  # the dim was removed: put it back as size 1
            g, indices = g.unsqueeze(ctx.dim), indices.unsqueeze(ctx.dim)
        gx = scatter(zeros(ctx.in_shape, dtype=g.dtype, device=g.device), ctx.dim, indices, g)
        return (gx,) + (None,) * (len(ctx.next_edges) - 1)


class Sort(_SelectAlongDim, Function):
    @staticmethod
    def forward(ctx, x, dim, descending):
        return _selected(ctx, x, dim, run("sort", x, dim, descending), False)


class TopK(_SelectAlongDim, Function):
    @staticmethod
    def forward(ctx, x, k, dim, largest):
        return _selected(ctx, x, dim, run("topk", x, k, dim, largest), False)


class KthValue(_SelectAlongDim, Function):
    @staticmethod
    def forward(ctx, x, k, dim):
        return _selected(ctx, x, dim, run("kthvalue", x, k, dim), True)


class MedianDim(_SelectAlongDim, Function):
    @staticmethod
    def forward(ctx, x, dim, ignore_nan):
        return _selected(ctx, x, dim, run("median", x, dim, ignore_nan), True)


class MedianAll(Function):
    """median()/nanmedian() of all elements (a 0-d result); the gradient is shared among ties."""

    @staticmethod
    def forward(ctx, x, ignore_nan):
        value, _ = run("median", x.reshape(-1), 0, ignore_nan)
        ctx.save_for_backward(x, value)
        return value

    @staticmethod
    def backward(ctx, g):
        x, value = ctx.saved_tensors
        dims = tuple(range(x.ndim))
        keep = (1,) * x.ndim
        y, g = value.reshape(keep), g.reshape(keep)
        if is_grad_enabled():  # create_graph: the same split, from differentiable ops
            return _reduce_grad.amax_grad(x, y, g, dims), None
        return run("amax_backward", x, y, g, dims), None


def _check_input(input, name: str) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if input.dtype.is_complex:  # complex numbers have no order (torch refuses them too)
        raise complex_unsupported(name, input.dtype)


def _as_row(input: Tensor, dim, name: str):
    """(x, d): 0-d inputs as a 1-element row (PyTorch treats them so), d the wrapped dim."""
    d = wrap_dim(dim, input.ndim, input.shape, name)
    return (input.reshape(1), 0) if input.ndim == 0 else (input, d)


def _undo_row(input: Tensor, values: Tensor, indices: Tensor):
    if input.ndim == 0:
        return values.reshape(()), indices.reshape(())
    return values, indices


def sort(input: Tensor, dim: int = -1, descending: bool = False, *, stable: bool = False):
    """(values, indices) of input sorted along dim, ascending unless `descending`. Always stable
    (equal values keep their order); NaN sorts as the largest value."""
    _check_input(input, "sort")
    x, d = _as_row(input, dim, "sort")
    values, indices = Sort.apply(x, d, bool(descending))
    return sort_result(*_undo_row(input, values, indices))


def argsort(input: Tensor, dim: int = -1, descending: bool = False, *, stable: bool = False) -> Tensor:
    """The int64 indices that sort input along dim (sort(...).indices)."""
    return sort(input, dim, descending, stable=stable).indices


def msort(input: Tensor) -> Tensor:
    """input sorted along its first dim (sort(input, dim=0).values)."""
    return sort(input, 0).values


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the k largest (or, largest=False, smallest) elements along dim, in
    order (also when sorted=False, which PyTorch allows to be any order). Ties go to the lower
    index; NaN counts as the largest value."""
    _check_input(input, "topk")
    x, d = _as_row(input, dim, "topk")
    k = int(k)
    n = x.shape[d]
    if not 0 <= k <= n:
        raise RuntimeError(f"topk(): selected index k={k} is out of range for dimension {dim} of size {n} "
                           f"(input shape {tuple(input.shape)})")
    values, indices = TopK.apply(x, k, d, bool(largest))
    return topk_result(*_undo_row(input, values, indices))


def _keepdim(values: Tensor, indices: Tensor, input: Tensor, dim: int, keepdim: bool):
    if keepdim and input.ndim:
        return values.unsqueeze(dim), indices.unsqueeze(dim)
    return values, indices


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False):
    """(values, indices) of the k-th smallest element (k from 1) along dim; NaN is the largest.
    Of equal values, the one at the k-th place of a stable sort is returned."""
    _check_input(input, "kthvalue")
    x, d = _as_row(input, dim, "kthvalue")
    k = int(k)
    n = x.shape[d]
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k={k} is out of range for dimension {dim} of size "
                           f"{n} (input shape {tuple(input.shape)}); expected 1 <= k <= {n}")
    values, indices = KthValue.apply(x, k, d)
    values, indices = _undo_row(input, values, indices)
    return kthvalue_result(*_keepdim(values, indices, input, d, keepdim))


def _median(name: str, input: Tensor, dim, keepdim: bool, ignore_nan: bool):
    _check_input(input, name)
    if dim is None:
        if input.numel() == 0:
            if not input.dtype.is_floating_point:
                raise RuntimeError(f"{name}(): cannot take the median of an empty {input.dtype} tensor "
                                   f"(shape {tuple(input.shape)})")
            return full((), float("nan"), dtype=input.dtype, device=input.device)
        return MedianAll.apply(input, ignore_nan)
    x, d = _as_row(input, dim, name)
    if x.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size (input shape "
                         f"{tuple(input.shape)})")
    values, indices = MedianDim.apply(x, d, ignore_nan)
    values, indices = _undo_row(input, values, indices)
    result = median_result if name == "median" else nanmedian_result
    return result(*_keepdim(values, indices, input, d, keepdim))


def median(input: Tensor, dim: int | None = None, keepdim: bool = False):
    """The lower median: of all elements (a 0-d tensor), or (values, indices) along dim. A row
    holding a NaN has median NaN (index: its first NaN), as in PyTorch."""
    return _median("median", input, dim, keepdim, False)


def nanmedian(input: Tensor, dim: int | None = None, keepdim: bool = False):
    """median ignoring NaNs (NaN only where every element is NaN)."""
    return _median("nanmedian", input, dim, keepdim, True)

