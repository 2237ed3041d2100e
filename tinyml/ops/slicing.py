"""Slicing ops: views that select part of a tensor, sharing its storage and version counter.

    slicing (select, narrow, split, chunk, unbind, basic indexing): dx = zeros with g in the slice,
        or for split/unbind (several views of one tensor) dx = cat(grads of the pieces)
    diagonal: dx = zeros with g on the diagonal

Each backward runs its kernel (`slice_backward`, `diagonal_backward`); under create_graph an
`adjoint` node makes the result differentiable again (its backward is the slice itself).
The kernels are in backends/<backend>/slicing.py.
"""
from __future__ import annotations

from .._graph import adjoint
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor, _wrap_dim
from . import _complex_grad as cx
from .movement import _view

__all__ = ["chunk", "diagonal", "narrow", "select", "split", "unbind"]


class Slice(Function):
    """y = x[index] for a normalised basic index (see the `slice_view` kernel); a view."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.in_shape, ctx.index = x.shape, index
        out = _view(x, "slice_view", index)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out  # autograd links floats only

    @staticmethod
    def backward(ctx, g):
        dx = run("slice_backward", g, ctx.in_shape, ctx.index)
        return (adjoint(g, dx, Slice.apply, ctx.index) if is_grad_enabled() else dx), None  # d/dg: slices


def _dim_slice(ndim_before: int, item) -> tuple:
    return (slice(None),) * ndim_before + (item,)


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """The view input[..., index, ...] with `dim` removed."""
    if input.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = _wrap_dim(dim, input.ndim)
    n = input.shape[d]
    index = int(index)
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size {list(input.shape)} at "
                         f"dimension {d}")
    return Slice.apply(input, _dim_slice(d, index % n))


def narrow(input: Tensor, dim: int, start, length: int) -> Tensor:
    """The view of `length` elements of `dim` from `start` (negative start counts from the end)."""
    if input.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _wrap_dim(dim, input.ndim)
    n, start, length = input.shape[d], int(start), int(length)
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got {start})")
    if start < 0:
        start += n
    if length < 0 or start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}) of dim {d} "
                           f"(tensor shape {tuple(input.shape)})")
    if start == 0 and length == n:
        return input
    return Slice.apply(input, _dim_slice(d, slice(start, start + length, 1)))


class SplitViews(Function):
    """Views of consecutive pieces of `dim` of sizes `sizes`; dx = cat(grads, dim). One node for
    all pieces, so the backward of a split is one concatenation, not one zero-fill per piece."""

    @staticmethod
    def forward(ctx, x, dim, sizes):
        ctx.dim = dim
        out, start = [], 0
        for s in sizes:
            out.append(_view(x, "slice_view", _dim_slice(dim, slice(start, start + s, 1))))
            start += s
        return cx.join_outputs(ctx, tuple(out)) if x.dtype.is_complex else tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        from .movement_copy import cat  # at call time: movement_copy imports this module

        return cat(list(grads), ctx.dim), None, None


def split(tensor: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of `split_size` (the last may be smaller) or of the given section sizes along `dim`."""
    if tensor.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = _wrap_dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 0 or (size == 0 and n != 0):
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if size else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                               f"size at dimension {d}), but got split_sizes={sizes}")
    return SplitViews.apply(tensor, d, tuple(sizes))


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Split into `chunks` pieces of ceil(n / chunks) (fewer when n is small), as torch.chunk."""
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    if input.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    n = input.shape[_wrap_dim(dim, input.ndim)]
    return split(input, -(-n // chunks), dim) if n else split(input, [0] * chunks, dim)


class Unbind(Function):
    """Views x.select(dim, i) for every i; dx = stack(grads, dim)."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        out = tuple(_view(x, "slice_view", _dim_slice(dim, i)) for i in range(x.shape[dim]))
        return cx.join_outputs(ctx, out) if x.dtype.is_complex else out

    @staticmethod
    def backward(ctx, *grads):
        from .movement_copy import stack  # at call time: movement_copy imports this module

        return stack(list(grads), ctx.dim), None


def unbind(input: Tensor, dim: int = 0) -> tuple:
    if input.ndim == 0:
        raise IndexError("unbind() cannot be applied to a 0-dim tensor.")
    d = _wrap_dim(dim, input.ndim)
    return Unbind.apply(input, d) if input.shape[d] else ()


class Diagonal(Function):
    @staticmethod
    def forward(ctx, x, offset, dim1, dim2):
        ctx.args = (x.shape, offset, dim1, dim2)
        out = _view(x, "diagonal_view", offset, dim1, dim2)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        dx = run("diagonal_backward", g, *ctx.args)
        if is_grad_enabled():  # create_graph: dx is linear in g; d/dg takes the diagonal again
            dx = adjoint(g, dx, Diagonal.apply, *ctx.args[1:])
        return dx, None, None, None


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The view of the `offset`-th diagonal of the (dim1, dim2) planes, appended as the last dim."""
    d1, d2 = _wrap_dim(dim1, input.ndim), _wrap_dim(dim2, input.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return Diagonal.apply(input, int(offset), d1, d2)
