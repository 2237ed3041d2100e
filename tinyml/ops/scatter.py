"""Gather/scatter family: gather, scatter, scatter_add, index_select, index_add, take_along_dim and
one_hot (the embedding lookup is its own family: embedding.py).

    gather(x, d, idx):         y[i][j] = x[i][idx[i][j]] (d = 1)     dx = scatter_add(0, d, idx, g)
    scatter(x, d, idx, src):   y = x; y[i][idx[i][j]] = src[i][j]    dx = g zeroed where written,
                                                                     dsrc = gather(g, d, idx)
    scatter_add(x, d, idx, src): y = x; y[..] += src                 dx = g, dsrc = gather(g, d, idx)
    index_select(x, d, idx):   y = x[.., idx, ..]                    dx = index_add(0, d, idx, g)
    index_add(x, d, idx, s, alpha): y = x; y[.., idx[i], ..] += alpha s[.., i, ..]
                                                               dx = g, ds = alpha index_select(g, d, idx)
Repeated indices accumulate in every scatter-add (the gradients of gather/index_select are right
for repeated indices).
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import Function
from ..backends import run
from ..tensor import Tensor, _wrap_dim
from ._broadcast import _check_scalar, broadcast_shapes
from .creation import zeros
from .movement import expand, reshape
from .movement_copy import pad

__all__ = ["gather", "index_add", "index_select", "one_hot", "scatter", "scatter_add",
           "take_along_dim"]


def _check_index(index: Tensor, name: str) -> None:
    if not isinstance(index, Tensor) or index.dtype is not _dt.int64:
        got = index.dtype if isinstance(index, Tensor) else type(index).__name__
        raise RuntimeError(f"{name}(): Expected dtype int64 for index, got {got}")


def _fit_to(g: Tensor, shape: tuple) -> Tensor:
    """g (the index's shape) zero-padded at the end of each dim up to `shape` (src may be larger)."""
    if g.shape == tuple(shape):
        return g
    pads = []
    for n, s in zip(reversed(g.shape), reversed(shape)):
        pads += [0, s - n]
    return pad(g, pads)


class Gather(Function):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.in_shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return run("gather", x, dim, index)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        base = zeros(ctx.in_shape, dtype=g.dtype, device=g.device)
        return scatter_add(base, ctx.dim, index, g), None, None


def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """y[i][j][k] = x[i][index[i][j][k]][k] (dim = 1); index has x's ndim, y has index's shape."""
    _check_index(index, "gather")
    return Gather.apply(input, _wrap_dim(dim, input.ndim), index)


class Scatter(Function):
    @staticmethod
    def forward(ctx, x, src, dim, index, reduce):
        ctx.dim, ctx.reduce = dim, reduce
        ctx.src_shape = src.shape if isinstance(src, Tensor) else None
        ctx.save_for_backward(index)
        return run("scatter", x, dim, index, src, reduce)

    @staticmethod
    def backward(ctx, g):
        if ctx.reduce is not None:
            raise RuntimeError(f"the derivative of scatter with reduce={ctx.reduce!r} is not implemented")
        (index,) = ctx.saved_tensors
        gx = Scatter.apply(g, 0, ctx.dim, index, None) if ctx.needs_input_grad[0] else None
        gs = _fit_to(gather(g, ctx.dim, index), ctx.src_shape) if ctx.needs_input_grad[1] else None
        return gx, gs, None, None, None


def scatter(input: Tensor, dim: int, index: Tensor, src=None, *, value=None,
            reduce: str | None = None) -> Tensor:
    """y = x with y[..., index[i], ...] = src[i] along dim (src a tensor or a number; `value=` too);
    reduce 'add' / 'multiply' combine instead of overwriting."""
    _check_index(index, "scatter")
    src = value if src is None else src
    if src is None:
        raise TypeError("scatter(): expected a src tensor or a value")
    if reduce not in (None, "add", "multiply"):
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce!r}")
    if isinstance(src, Tensor):
        if src.dtype is not input.dtype:
            raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype (got "
                               f"{input.dtype} and {src.dtype})")
        if src.ndim != index.ndim:
            raise RuntimeError("scatter(): Index tensor must have the same number of dimensions as src "
                               f"tensor (index shape {tuple(index.shape)}, src shape {tuple(src.shape)})")
    else:
        _check_scalar(src, "scatter")
    return Scatter.apply(input, src, _wrap_dim(dim, input.ndim), index, reduce)


class ScatterAdd(Function):
    @staticmethod
    def forward(ctx, x, src, dim, index):
        ctx.dim, ctx.src_shape = dim, src.shape
        ctx.save_for_backward(index)
        return run("scatter_add", x, dim, index, src)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        gs = _fit_to(gather(g, ctx.dim, index), ctx.src_shape) if ctx.needs_input_grad[1] else None
        return g, gs, None, None


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """y = x; y[..., index[i], ...] += src[i] along dim (repeated indices accumulate)."""
    _check_index(index, "scatter_add")
    if src.dtype is not input.dtype:
        raise RuntimeError("scatter_add(): Expected self.dtype to be equal to src.dtype (got "
                           f"{input.dtype} and {src.dtype})")
    if src.ndim != index.ndim:
        raise RuntimeError("scatter_add(): Index tensor must have the same number of dimensions as src "
                           f"tensor (index shape {tuple(index.shape)}, src shape {tuple(src.shape)})")
    return ScatterAdd.apply(input, src, _wrap_dim(dim, input.ndim), index)


def _check_vector_index(index: Tensor, name: str) -> Tensor:
    if not isinstance(index, Tensor) or index.dtype not in (_dt.int64, _dt.int32):
        got = index.dtype if isinstance(index, Tensor) else type(index).__name__
        raise RuntimeError(f"{name}(): Expected dtype int32 or int64 for index, got {got}")
    if index.ndim > 1:
        raise IndexError(f"{name}(): Index is supposed to be a vector, got shape {tuple(index.shape)}")
    index = index if index.ndim == 1 else reshape(index, (1,))
    return index if index.dtype is _dt.int64 else index.to(_dt.int64)


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.in_shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return run("index_select", x, dim, index)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        return index_add(zeros(ctx.in_shape, dtype=g.dtype, device=g.device), ctx.dim, index, g), None, None


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """x with dim `dim` replaced by the slices at the 1-D `index` (a copy; indices may repeat)."""
    index = _check_vector_index(index, "index_select")
    if input.ndim == 0:
        return reshape(index_select(reshape(input, (1,)), 0, index), ())
    return IndexSelect.apply(input, _wrap_dim(dim, input.ndim), index)


class IndexAdd(Function):
    @staticmethod
    def forward(ctx, x, source, dim, index, alpha):
        ctx.dim, ctx.alpha = dim, alpha
        ctx.save_for_backward(index)
        return run("index_add", x, dim, index, source, alpha)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        gs = None
        if ctx.needs_input_grad[1]:
            gs = index_select(g, ctx.dim, index)
            gs = gs * ctx.alpha if ctx.alpha != 1 else gs
        return g, gs, None, None, None


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """y = x; y[.., index[i], ..] += alpha * source[.., i, ..] along dim (repeats accumulate)."""
    index = _check_vector_index(index, "index_add")
    if input.ndim == 0:
        raise RuntimeError("index_add_(): self must have at least one dimension (got a 0-dim tensor)")
    d = _wrap_dim(dim, input.ndim)
    want = tuple(input.shape[:d]) + (index.shape[0],) + tuple(input.shape[d + 1:])
    if tuple(source.shape) != want:
        raise RuntimeError(f"index_add_(): source of shape {tuple(source.shape)} does not match the "
                           f"destination of shape {tuple(input.shape)} with {index.shape[0]} indices along "
                           f"dimension {d} (expected source shape {want})")
    if source.dtype is not input.dtype:
        raise RuntimeError(f"index_add_(): self ({input.dtype}) and source ({source.dtype}) must have the "
                           "same scalar type")
    return IndexAdd.apply(input, source, d, index, alpha)


def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """gather with input and indices broadcast against each other except along `dim` (dim None:
    over the flattened input)."""
    _check_index(indices, "take_along_dim")
    if dim is None:
        return gather(reshape(input, (-1,)), 0, reshape(indices, (-1,)))
    if input.ndim != indices.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same number of "
                           f"dimensions, but got {input.ndim} dimensions for input, and {indices.ndim} "
                           "dimensions for indices")
    d = _wrap_dim(dim, input.ndim)

    def other(s):
        return s[:d] + (1,) + s[d + 1:]

    b = broadcast_shapes(other(input.shape), other(indices.shape))
    x_shape = b[:d] + (input.shape[d],) + b[d + 1:]
    i_shape = b[:d] + (indices.shape[d],) + b[d + 1:]
    x = input if input.shape == x_shape else expand(input, x_shape)
    idx = indices if indices.shape == i_shape else expand(indices, i_shape)
    return gather(x, d, idx)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """y[..., c] = 1 where tensor == c (int64); num_classes -1 infers max + 1."""
    if tensor.dtype is not _dt.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor (got "
                           f"{tensor.dtype})")
    return run("one_hot", tensor, int(num_classes))
