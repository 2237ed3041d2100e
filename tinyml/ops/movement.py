"""Movement ops that are views: they share storage (and the version counter) with their input.

    expand:   y = x broadcast to `shape` (a stride-0 view); dx = sum_to(g, x.shape)
    reshape:  dx = g.reshape(x.shape)          permute: dx = g.permute(inverse(dims))

Views that select part of a tensor (slicing, split, unbind, diagonal) live in slicing.py; copies
(cat, stack, repeat, flip, roll, tril, triu, pad) in movement_copy.py.
"""
from __future__ import annotations

from .. import autograd
from ..autograd import Function
from ..backends import dispatch
from ..tensor import Tensor, _wrap_dim
from . import _complex_grad as cx
from ._broadcast import broadcast_shapes

__all__ = ["broadcast_tensors", "broadcast_to", "expand", "expand_as", "flatten", "meshgrid", "moveaxis",
           "movedim", "permute", "reshape", "reshape_as", "squeeze", "sum_to", "swapaxes", "t", "transpose",
           "unflatten", "unsqueeze", "view", "view_as"]


def _view(x: Tensor, kernel: str, *args) -> Tensor:
    """A view of x through a view kernel: the result shares x's storage and version counter."""
    return x._make_view(dispatch(kernel, x.device.type)(x._data, *args))


def _untracked(x: Tensor) -> bool:
    """Whether a view of x records no graph node (x needs no grad, or grad is off, as inside every
    forward and backward): then the view skips Function.apply, a third of a reshape's cost."""
    return not (x.requires_grad and autograd._grad_enabled)


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        out = _view(x, "expand", shape)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out  # autograd links floats only

    @staticmethod
    def backward(ctx, g):
        return sum_to(g, ctx.in_shape), None


def expand(input: Tensor, *sizes) -> Tensor:
    """Broadcast to `sizes` without copying; -1 keeps a dimension (torch.Tensor.expand)."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    shape = tuple(sizes)
    n_new = len(shape) - input.ndim
    if n_new < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be greater or equal to "
                           f"the number of dimensions in the tensor ({input.ndim}); shape "
                           f"{tuple(input.shape)}")
    out = []
    for i, s in enumerate(shape):
        cur = input.shape[i - n_new] if i >= n_new else None
        if s == -1:
            if cur is None:
                raise RuntimeError(f"expand: -1 is not allowed in a leading, new dimension (sizes {shape})")
            s = cur
        elif cur is not None and cur != 1 and cur != s:
            raise RuntimeError(f"expand: the expanded size of the tensor ({s}) must match the existing size "
                               f"({cur}) at non-singleton dimension {i}; target sizes {shape}, tensor shape "
                               f"{tuple(input.shape)}")
        out.append(s)
    out = tuple(out)
    if out == input.shape:
        return input
    return _view(input, "expand", out) if _untracked(input) else Expand.apply(input, out)


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    return expand(input, other.shape)


def sum_to(g: Tensor, shape: tuple) -> Tensor:
    """Sum g over the dimensions that broadcasting added or stretched, to get back `shape`."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                      if s == 1 and g.shape[i + lead] != 1)
    out = g.sum(dim=dims, keepdim=True) if dims else g
    return out.reshape(shape) if out.shape != shape else out


def _infer_shape(shape, numel: int, x_shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise RuntimeError(f"only one dimension can be inferred (-1) in shape {shape}")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape {shape} is invalid for input of size {numel} (shape {tuple(x_shape)})")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"shape {shape} is invalid for input of size {numel} (shape {tuple(x_shape)})")
    return shape


class View(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        out = _view(x, "view", shape)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        return reshape(g, ctx.in_shape), None


def view(input: Tensor, *shape) -> Tensor:
    """A view with a new shape; raises when the strides do not allow it (use reshape)."""
    shape = _infer_shape(shape, input.numel(), input.shape)
    if shape == input.shape:
        return input
    return _view(input, "view", shape) if _untracked(input) else View.apply(input, shape)


def reshape(input: Tensor, *shape) -> Tensor:
    """A view when the layout allows, else a contiguous copy reshaped."""
    shape = _infer_shape(shape, input.numel(), input.shape)
    if shape == input.shape:
        return input
    if not input.is_contiguous():
        input = input.contiguous()
    return _view(input, "view", shape) if _untracked(input) else View.apply(input, shape)


def view_as(input: Tensor, other: Tensor) -> Tensor:
    return view(input, other.shape)


def reshape_as(input: Tensor, other: Tensor) -> Tensor:
    return reshape(input, other.shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        out = _view(x, "permute", dims)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        inverse = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inverse[d] = i
        return Permute.apply(g, tuple(inverse)), None


def permute(input: Tensor, *dims) -> Tensor:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    dims = tuple(_wrap_dim(d, input.ndim) for d in dims)
    if sorted(dims) != list(range(input.ndim)):
        raise RuntimeError(f"permute: dims {dims} are not a permutation of the {input.ndim} dimensions of a "
                           f"tensor of shape {tuple(input.shape)}")
    if dims == tuple(range(input.ndim)):
        return input
    return _view(input, "permute", dims) if _untracked(input) else Permute.apply(input, dims)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    if input.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return input
    dims = list(range(input.ndim))
    d0, d1 = _wrap_dim(dim0, input.ndim), _wrap_dim(dim1, input.ndim)
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(input, dims)


swapaxes = transpose


def t(input: Tensor) -> Tensor:
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but got {input.ndim} (shape "
                           f"{tuple(input.shape)})")
    return transpose(input, 0, 1) if input.ndim == 2 else input


def squeeze(input: Tensor, dim=None) -> Tensor:
    """Drop size-1 dimensions (all, or those in `dim`, an int or tuple)."""
    if dim is None:
        shape = tuple(s for s in input.shape if s != 1)
    else:
        dims = {_wrap_dim(d, input.ndim) for d in ((dim,) if isinstance(dim, int) else dim)}
        shape = tuple(s for i, s in enumerate(input.shape) if not (i in dims and s == 1))
    return view(input, shape) if shape != input.shape else input


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    d = _wrap_dim(dim, input.ndim + 1)
    shape = input.shape[:d] + (1,) + input.shape[d:]
    return view(input, shape)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if input.ndim == 0:
        return reshape(input, (1,))
    s, e = _wrap_dim(start_dim, input.ndim), _wrap_dim(end_dim, input.ndim)
    if s > e:
        raise RuntimeError(f"flatten: start_dim {start_dim} cannot come after end_dim {end_dim}")
    n = 1
    for x in input.shape[s:e + 1]:
        n *= x
    return reshape(input, input.shape[:s] + (n,) + input.shape[e + 1:])


def unflatten(input: Tensor, dim: int, sizes) -> Tensor:
    """Split dimension `dim` into `sizes` (one entry may be -1)."""
    d = _wrap_dim(dim, input.ndim)
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    inner = _infer_shape(sizes, input.shape[d], (input.shape[d],)) if input.ndim else sizes
    return view(input, input.shape[:d] + inner + input.shape[d + 1:])


def movedim(input: Tensor, source, destination) -> Tensor:
    """Move dims `source` to positions `destination` (ints or sequences), the others keep their order."""
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
                           f"contain the same number of dims as destination ({list(dst)} dims)")
    n = input.ndim
    src = tuple(_wrap_dim(d, n) for d in src)
    dst = tuple(_wrap_dim(d, n) for d in dst)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in source {list(src)} or destination {list(dst)}")
    order = [None] * n
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(i for i in range(n) if i not in src)
    return permute(input, [o if o is not None else next(rest) for o in order])


moveaxis = movedim


def broadcast_to(input: Tensor, size) -> Tensor:
    return expand(input, tuple(size))


def broadcast_tensors(*tensors) -> tuple:
    """Views of every tensor expanded to their common broadcast shape."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    shape = broadcast_shapes(*(t.shape for t in tensors))
    return tuple(expand(t, shape) for t in tensors)


def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    """Coordinate grids from 1-D (or 0-d) tensors: with 'ij' output k varies along dim k; 'xy'
    (Cartesian, as numpy) swaps the roles of the first two. The results are expanded views."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: "
                           f"{indexing}")
    for i, t in enumerate(tensors):
        if t.ndim > 1:
            raise RuntimeError("torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got tensor "
                               f"{i} of shape {tuple(t.shape)}")
    if len({t.dtype for t in tensors}) > 1:
        raise RuntimeError("torch.meshgrid: expects all tensors to have the same dtype, got "
                           f"{', '.join(str(t.dtype) for t in tensors)}")
    flat = [reshape(t, (-1,)) for t in tensors]
    swap = indexing == "xy" and len(flat) >= 2
    if swap:
        flat[0], flat[1] = flat[1], flat[0]
    shape = tuple(t.shape[0] for t in flat)
    out = []
    for k, t in enumerate(flat):
        lead = (1,) * k + (shape[k],) + (1,) * (len(flat) - k - 1)
        out.append(expand(reshape(t, lead), shape))
    if swap:
        out[0], out[1] = out[1], out[0]
    return tuple(out)
