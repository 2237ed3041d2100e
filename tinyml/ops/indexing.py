"""Tensor indexing: `x[index]` (getitem), `x[index] = value` (setitem_), nonzero, masked_select.

An index is split in two steps, as PyTorch does:
  1. basic part (ints, slices with step > 0, None, Ellipsis, Python bools) -> one view of x
     (the `slice_view` kernel), shared storage; dx = zeros with g written into the slice;
  2. advanced part (int tensors/lists and bool masks, a mask turned into its nonzero coordinates)
     on the view's dims -> the `index` kernel, a copy; dx = zeros with g scatter-added at the
     indices (repeated indices accumulate).
Index tensors broadcast together; their result dims replace the indexed dims in place when those
are adjacent, else they come first (numpy/PyTorch placement; ints were already removed in step 1).

take, index_fill and unfold are compositions of the above (getitem, where, index_select).

setitem_ writes through a kernel into x's storage when no gradient is recorded; otherwise it
computes the out-of-place IndexPut (dx = g with the written positions zeroed, dvalue = g[index])
and moves x onto it with `apply_inplace`.
"""
from __future__ import annotations

import numpy as np

from .. import autograd
from .. import dtypes as _dt
from .._graph import adjoint
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from . import _complex_grad as cx
from ._broadcast import _check_scalar, broadcast_shapes
from .creation import empty, tensor
from .inplace import apply_inplace
from .movement import _view, expand, reshape
from .slicing import Slice, unbind

__all__ = ["argwhere", "getitem", "index_fill", "index_fill_", "masked_select", "nonzero", "setitem_", "take",
           "unfold"]

_INDEX_TYPES = ("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are valid "
                "indices")


def _as_index_tensor(item, x: Tensor) -> Tensor:
    """A list / numpy array / tensor used as an index, as an int64 or bool tensor on x's device."""
    t = item if isinstance(item, Tensor) else tensor(item, device=x.device)
    if not isinstance(item, Tensor) and t.numel() == 0:
        t = t.to(_dt.int64)  # `x[[]]` selects nothing (an empty list would default to float)
    if t.dtype is _dt.uint8:
        t = t.to(_dt.bool_)  # byte masks, PyTorch's legacy form
    if not (t.dtype.is_bool or t.dtype.is_integer):
        raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, got {t.dtype}")
    if t.device != x.device:
        t = t.to(x.device)
    return t if t.dtype in (_dt.bool_, _dt.int64) else t.to(_dt.int64)


def _classify(x: Tensor, index) -> tuple[list, int]:
    """[(kind, value)] for each item of the index, and how many dims of x they consume."""
    items, consumed, ellipses = [], 0, 0
    for it in index if isinstance(index, tuple) else (index,):
        if it is None:
            items.append(("none", None))
        elif it is Ellipsis:
            ellipses += 1
            items.append(("ellipsis", None))
        elif isinstance(it, slice):
            items.append(("slice", it))
            consumed += 1
        elif isinstance(it, (bool, np.bool_)):
            items.append(("bool", bool(it)))
        elif isinstance(it, (Tensor, list, np.ndarray)):
            t = _as_index_tensor(it, x)
            if t.dtype is _dt.bool_ and t.ndim == 0:
                items.append(("bool", bool(t.item())))
            elif t.dtype is _dt.bool_:
                items.append(("mask", t))
                consumed += t.ndim
            else:
                items.append(("tensor", t))
                consumed += 1
        elif hasattr(it, "__index__"):
            items.append(("int", it.__index__()))
            consumed += 1
        else:
            raise IndexError(f"{_INDEX_TYPES} (got {type(it).__name__})")
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > x.ndim:
        if x.ndim == 0:
            raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                             "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")
        raise IndexError(f"too many indices for tensor of dimension {x.ndim} (got {consumed} indices for "
                         f"shape {tuple(x.shape)})")
    return items, consumed


def _parse(x: Tensor, index) -> tuple:
    """(basic, tensors, dims): `basic` a normalised basic index for `slice_view` (None when it is
    the identity), `tensors` the int64 index tensors and `dims` the view dims they index."""
    items, consumed = _classify(x, index)
    basic, tensors, dims = [], [], []
    identity = True
    d = pos = 0  # the dim of x consumed next; the dim of the view it becomes (ints leave none)
    for kind, v in items:
        if kind == "ellipsis":
            n = x.ndim - consumed
            basic.extend(slice(0, s, 1) for s in x.shape[d:d + n])
            d, pos = d + n, pos + n
        elif kind in ("none", "bool"):
            identity = False
            if kind == "bool" and not v:  # x[False]: a new dim of size 0
                tensors.append(empty(0, dtype=_dt.int64, device=x.device))
                dims.append(pos)
            basic.append(None)
            pos += 1
        elif kind == "int":
            size = x.shape[d]
            if not -size <= v < size:
                raise IndexError(f"index {v} is out of bounds for dimension {d} with size {size}")
            basic.append(v % size)
            identity = False
            d += 1
        elif kind == "slice":
            if v.step is not None and v.step <= 0:
                raise ValueError(f"step must be greater than zero (got slice step {v.step} for dimension "
                                 f"{d})")
            start, stop, step = v.indices(x.shape[d])
            stop = max(stop, start)
            identity = identity and (start, stop, step) == (0, x.shape[d], 1)
            basic.append(slice(start, stop, step))
            d, pos = d + 1, pos + 1
        elif kind == "tensor":
            dims.append(pos)
            tensors.append(v)
            basic.append(slice(0, x.shape[d], 1))
            d, pos = d + 1, pos + 1
        else:  # a bool mask over dims d .. d + k - 1
            k = v.ndim
            for j in range(k):
                if v.shape[j] != x.shape[d + j]:
                    raise IndexError(f"The shape of the mask {list(v.shape)} at index {j} does not match the "
                                     f"shape of the indexed tensor {list(x.shape)} at index {d + j}")
            coords = unbind(_transpose_nonzero(v), 0)
            for j in range(k):
                dims.append(pos + j)
                tensors.append(coords[j])
                basic.append(slice(0, x.shape[d + j], 1))
            d, pos = d + k, pos + k
    return (None if identity else tuple(basic)), tensors, tuple(dims)


def _transpose_nonzero(mask: Tensor) -> Tensor:
    """(ndim, n) contiguous coordinates of the true elements (one row per dim)."""
    return run("nonzero", mask).transpose(0, 1).contiguous()


def _indexed_shape(shape: tuple, tensors: list, dims: tuple) -> tuple:
    """Shape of view[index]: the broadcast index shape in place of `dims` (first if not adjacent)."""
    if not tensors:
        return tuple(shape)
    try:
        b = broadcast_shapes(*(t.shape for t in tensors))
    except RuntimeError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                         + ", ".join(str(list(t.shape)) for t in tensors)) from None
    rest = tuple(s for i, s in enumerate(shape) if i not in dims)
    if dims == tuple(range(dims[0], dims[0] + len(dims))):
        return tuple(shape[:dims[0]]) + b + tuple(shape[dims[-1] + 1:])
    return b + rest


class AdvancedIndex(Function):
    """y = x[idx] for int index tensors at `dims`; dx = zeros with g scatter-added at idx."""

    @staticmethod
    def forward(ctx, x, tensors, dims):
        ctx.in_shape, ctx.dims = x.shape, dims
        ctx.save_for_backward(*tensors)
        out = run("index", x, tensors, dims)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out  # autograd links floats only

    @staticmethod
    def backward(ctx, g):
        tensors = list(ctx.saved_tensors)
        dx = run("index_backward", g, ctx.in_shape, tensors, ctx.dims)
        if is_grad_enabled():  # create_graph: dx is linear in g; d/dg indexes again
            dx = adjoint(g, dx, AdvancedIndex.apply, tensors, ctx.dims)
        return dx, None, None


def getitem(x: Tensor, index) -> Tensor:
    """x[index]: a view for basic indexing, a copy when a tensor/list/mask index is involved."""
    basic, tensors, dims = _parse(x, index)
    if not tensors:
        return Slice.apply(x, basic if basic is not None else ())
    y = Slice.apply(x, basic) if basic is not None else x
    _indexed_shape(y.shape, tensors, dims)  # raises PyTorch's message for unbroadcastable indices
    return AdvancedIndex.apply(y, tensors, dims)


class IndexPut(Function):
    """out = x with out[index] = value (value of the indexed shape, or a scalar).

    dx = g with the written positions zeroed; dvalue = g[index]."""

    @staticmethod
    def forward(ctx, x, value, basic, tensors, dims):
        ctx.basic, ctx.dims = basic, dims
        ctx.save_for_backward(*tensors)
        out = run("clone", x)
        run("index_put_", _view(out, "slice_view", basic), tensors, dims, value, False)
        return out

    @staticmethod
    def backward(ctx, g):
        tensors = list(ctx.saved_tensors)
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = IndexPut.apply(g, 0, ctx.basic, tensors, ctx.dims)
        if ctx.needs_input_grad[1]:
            gv = Slice.apply(g, ctx.basic)
            gv = AdvancedIndex.apply(gv, tensors, ctx.dims) if tensors else gv
        return gx, gv, None, None, None


def setitem_(x: Tensor, index, value) -> Tensor:
    """x[index] = value, in place; value a number or a tensor broadcastable to x[index]'s shape."""
    basic, tensors, dims = _parse(x, index)
    basic = basic if basic is not None else ()
    view_shape = _view(x, "slice_view", basic).shape
    target = _indexed_shape(view_shape, tensors, dims)
    if isinstance(value, Tensor):
        if value.device != x.device and value.ndim == 0:
            value = value.to(x.device)  # a 0-d value may live anywhere, as in PyTorch
        if value.dtype is not x.dtype:
            value = value.to(x.dtype)
        while value.ndim > len(target) and value.shape[0] == 1:
            value = reshape(value, value.shape[1:])  # PyTorch drops leading size-1 dims of the value
        try:
            ok = broadcast_shapes(value.shape, target) == tuple(target)
        except RuntimeError:
            ok = False
        if not ok:
            raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} cannot be "
                               f"broadcast to indexing result of shape {list(target)}")
        if value.shape != tuple(target):
            value = expand(value, target)
    else:
        _check_scalar(value, "setitem")
    record = autograd.is_grad_enabled() and (x.requires_grad or
                                             (isinstance(value, Tensor) and value.requires_grad))
    if not record:
        run("index_put_", _view(x, "slice_view", basic), tensors, dims, value, False)
        x._version[0] += 1
        return x
    return apply_inplace(x, IndexPut.apply(x, value, basic, tensors, dims))


def nonzero(input: Tensor, *, as_tuple: bool = False):
    """Coordinates of the nonzero elements: an (n, ndim) int64 tensor, or ndim tensors of (n,)."""
    if as_tuple:
        x = input if input.ndim else reshape(input, (1,))
        return unbind(_transpose_nonzero(x), 0) if x.ndim else ()
    return run("nonzero", input)


def argwhere(input: Tensor) -> Tensor:
    return nonzero(input)


def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    """The 1-D tensor of input's elements where the (broadcast) bool mask is true."""
    if not isinstance(mask, Tensor) or mask.dtype is not _dt.bool_:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {got}")
    shape = broadcast_shapes(input.shape, mask.shape)
    x = input if input.shape == shape else expand(input, shape)
    m = mask if mask.shape == shape else expand(mask, shape)
    return getitem(x, m) if x.ndim else getitem(reshape(x, (1,)), reshape(m, (1,)))


def take(input: Tensor, index: Tensor) -> Tensor:
    """input viewed as 1-D, at the (int64) `index`, shaped like index; negative indices count from the end."""
    if not isinstance(index, Tensor) or index.dtype is not _dt.int64:
        got = index.dtype if isinstance(index, Tensor) else type(index).__name__
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {got}")
    n = input.numel()
    if index.numel():
        lo, hi = int(index.min().item()), int(index.max().item())
        if lo < -n or hi >= n:
            bad = lo if lo < -n else hi
            raise IndexError(f"take(): index {bad} is out of range for a tensor of {n} elements "
                             f"(input shape {tuple(input.shape)})")
    return getitem(reshape(input, (n,)), index)


def _index_mask(input: Tensor, dim: int, index: Tensor, name: str) -> tuple[Tensor, int]:
    """The bool mask, broadcastable to input, of the positions along dim that index names."""
    if not isinstance(index, Tensor) or index.dtype is not _dt.int64 or index.ndim > 1:
        got = (f"{index.dtype} of shape {tuple(index.shape)}" if isinstance(index, Tensor)
               else type(index).__name__)
        raise IndexError(f"{name}(): Expected a 0-D or 1-D long tensor for index, got {got}")
    d = dim + input.ndim if dim < 0 else dim
    if not 0 <= d < max(input.ndim, 1):
        raise IndexError(f"{name}(): dim {dim} is out of range for a tensor of {input.ndim} dims")
    size = input.shape[d] if input.ndim else 1
    ids = index.cpu().numpy().reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= size):  # no negative indices, as PyTorch's index_fill
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise IndexError(f"{name}(): index {int(bad)} is out of bounds for dimension {dim} with size {size}")
    mask = np.zeros(size, np.bool_)
    mask[ids] = True
    shape = [1] * input.ndim
    if input.ndim:
        shape[d] = size
    return tensor(mask.reshape(shape), device=input.device), d


def index_fill(input: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """input with the positions `index` along `dim` set to value (a number or a 0-d tensor);
    d input = g with those positions zeroed, d value = the sum of g over them."""
    from .pointwise import where  # pointwise loads after indexing in ops/__init__: no cycle either way

    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value.ndim} dimension(s) (shape {tuple(value.shape)})")
    mask, _ = _index_mask(input, dim, index, "index_fill")
    if isinstance(value, Tensor):
        value = value.to(input.dtype)
    return where(mask, value, input)


def index_fill_(self: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """In-place index_fill."""
    return apply_inplace(self, index_fill(self, dim, index, value))


def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """Tensor.unfold: every window of `size` elements along `dimension`, `step` apart, as a new last
    dim: shape (..., (L - size) // step + 1, ..., size). A gathered copy (index_select), where PyTorch
    returns a view: in-place writes to the result do not reach self."""
    d = dimension + self.ndim if dimension < 0 else dimension
    if not 0 <= d < max(self.ndim, 1):
        raise IndexError(f"unfold(): dimension {dimension} is out of range for a tensor of {self.ndim} dims")
    length = self.shape[d] if self.ndim else 1
    if size < 0 or size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    x = self if self.ndim else reshape(self, (1,))
    n = (length - size) // step + 1
    ids = (np.arange(n)[:, None] * step + np.arange(size)[None, :]).reshape(-1)
    y = x.index_select(d, tensor(ids, dtype=_dt.int64, device=self.device))
    y = reshape(y, x.shape[:d] + (n, size) + x.shape[d + 1:]).movedim(d + 1, -1)
    return y if self.ndim else reshape(y, (size,))
