"""Movement ops that copy: cat, stack, repeat, repeat_interleave, flip, roll, tril, triu, pad.

    cat:      y = [x_1; ...; x_k] along dim        dx_i = the i-th slice of g (a view)
    repeat:   y = tile(x, r)                       dx = sum of g over the r_i copies of each dim
    repeat_interleave: y = index_select(x, dim, [0]*r_0 + [1]*r_1 + ...)   (grad: index_add)
    flip:     dx = flip(g)                         roll(s): dx = roll(g, -s)
    tril/triu(k): dx = tril/triu(g, k)
    pad constant: dx = g[pads cropped]; reflect/replicate/circular: an index_select per padded dim
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import Function
from ..backends import run
from ..tensor import Tensor, _wrap_dim
from . import _complex_grad as cx
from .creation import arange, tensor
from .movement import reshape, unsqueeze
from .slicing import Slice, narrow, split

__all__ = ["cat", "concat", "concatenate", "flip", "fliplr", "flipud", "hstack", "pad", "repeat",
           "repeat_interleave", "roll", "stack", "tril", "triu", "vstack"]


def _complex_out(ctx, out: Tensor) -> Tensor:
    return cx.join_graph(ctx, out) if out.dtype.is_complex else out  # autograd links floating outputs only


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.dim, ctx.sizes = dim, [x.shape[dim] for x in xs]
        return _complex_out(ctx, run("cat", list(xs), dim))

    @staticmethod
    def backward(ctx, g):
        return (None,) + tuple(split(g, ctx.sizes, ctx.dim))


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate tensors (promoted to one dtype) along `dim`; all other sizes must match.
    1-D empty tensors are skipped, as in PyTorch."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"cat(): expected a sequence of Tensors, but element {i} is {type(t).__name__}")
    kept = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]
    ref = kept[0]
    if ref.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _wrap_dim(dim, ref.ndim)
    for i, t in enumerate(kept):
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim} "
                               f"(shapes {tuple(ref.shape)} and {tuple(t.shape)})")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[k]} but got size {t.shape[k]} for tensor number {i} in the "
                                   f"list (shapes {tuple(ref.shape)} and {tuple(t.shape)}, mismatch at "
                                   f"dimension {k})")
    dtype = kept[0].dtype
    for t in kept[1:]:
        dtype = _dt.promote_types(dtype, t.dtype)
    kept = [t if t.dtype is dtype else t.to(dtype) for t in kept]
    if len(kept) == 1:
        return kept[0].clone()
    return Cat.apply(d, *kept)


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join equal-shape tensors along a new dimension `dim`."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError("stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at entry {i}")
    d = _wrap_dim(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def hstack(tensors) -> Tensor:
    tensors = list(tensors)
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors) -> Tensor:
    return cat([t.reshape(1, -1) if t.ndim < 2 else t for t in tensors], 0)


class Repeat(Function):
    @staticmethod
    def forward(ctx, x, repeats):
        ctx.in_shape, ctx.repeats = x.shape, repeats
        return _complex_out(ctx, run("repeat", x, repeats))

    @staticmethod
    def backward(ctx, g):
        # y's dim i is r_i copies of x's (padded) dim i: view it as (r_i, s_i) and sum the copies.
        r = ctx.repeats
        s = (1,) * (len(r) - len(ctx.in_shape)) + tuple(ctx.in_shape)
        pairs = [v for ri, si in zip(r, s) for v in (ri, si)]
        gx = reshape(g, pairs).sum(dim=tuple(range(0, 2 * len(r), 2)))
        return reshape(gx, ctx.in_shape), None


def repeat(input: Tensor, *sizes) -> Tensor:
    """Tile the tensor `sizes[i]` times along each dim (Tensor.repeat; np.tile semantics)."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(f"Number of dimensions of repeat dims can not be smaller than number of "
                           f"dimensions of tensor (repeat dims {sizes}, tensor shape {tuple(input.shape)})")
    if any(s < 0 for s in sizes):
        raise RuntimeError(f"Trying to create tensor with negative dimension: repeats {sizes}")
    return Repeat.apply(input, sizes)


def repeat_interleave(input: Tensor, repeats=None, dim: int | None = None, *,
                      output_size: int | None = None) -> Tensor:
    """Repeat each slice along `dim` (all elements, flattened, when dim is None) `repeats` times;
    `repeats` an int or a 1-D int tensor with one count per slice. With only a tensor of counts,
    returns the indices 0..n-1 each repeated its count (torch.repeat_interleave(repeats))."""
    if repeats is None:
        counts = input
        if counts.ndim != 1 or not counts.dtype.is_integer:
            raise RuntimeError(f"repeat_interleave: repeats must be a 1-D integer tensor, got shape "
                               f"{tuple(counts.shape)} and dtype {counts.dtype}")
        return run("repeat_interleave", arange(counts.shape[0], device=counts.device), counts, 0)
    if dim is None:
        input, d = reshape(input, (-1,)), 0
    else:
        d = _wrap_dim(dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    if isinstance(repeats, Tensor):
        if repeats.ndim == 0 or repeats.shape == (1,):
            repeats = int(repeats.item())
        elif repeats.ndim != 1 or repeats.shape[0] != n:
            raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) "
                               f"= {repeats.shape[0] if repeats.ndim else 1} and input.size({d}) = {n}")
    if isinstance(repeats, int) and repeats < 0:
        raise RuntimeError(f"repeats can not be negative, got {repeats}")
    index = run("repeat_interleave", arange(n, device=input.device), repeats, 0)
    if output_size is not None and index.shape[0] != output_size:
        raise RuntimeError(f"repeat_interleave: output_size {output_size} does not match the sum of repeats "
                           f"{index.shape[0]}")
    # index_select as a method here and below: scatter.py, its module, imports this one
    return (input if input.ndim else reshape(input, (1,))).index_select(d, index)


class Flip(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return _complex_out(ctx, run("flip", x, dims))

    @staticmethod
    def backward(ctx, g):
        return Flip.apply(g, ctx.dims), None


def _dim_list(dims, ndim: int) -> tuple:
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    out = tuple(_wrap_dim(d, ndim) for d in dims)
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {next(d for d in out if out.count(d) > 1)} appears multiple times in the "
                           f"list of dims")
    return out


def flip(input: Tensor, dims) -> Tensor:
    """Reverse the order of elements along `dims` (a copy, as in PyTorch)."""
    return Flip.apply(input, _dim_list(dims, input.ndim))


def fliplr(input: Tensor) -> Tensor:
    return flip(input, 1)


def flipud(input: Tensor) -> Tensor:
    return flip(input, 0)


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return _complex_out(ctx, run("roll", x, shifts, dims))

    @staticmethod
    def backward(ctx, g):
        return Roll.apply(g, tuple(-s for s in ctx.shifts), ctx.dims), None, None


def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """y[(i + s) mod n] = x[i] along each dim; dims=None rolls the flattened tensor."""
    shifts = (int(shifts),) if isinstance(shifts, int) else tuple(int(s) for s in shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: with dims=None, shifts must be a single int, got {shifts}")
        return reshape(roll(reshape(input, (-1,)), shifts, 0), input.shape)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    return Roll.apply(input, shifts, tuple(_wrap_dim(d, input.ndim) for d in dims))


class _Triangle(Function):
    kernel = ""

    @classmethod
    def forward(cls, ctx, x, diagonal):
        ctx.diagonal = diagonal
        return _complex_out(ctx, run(cls.kernel, x, diagonal))

    @classmethod
    def backward(cls, ctx, g):
        return cls.apply(g, ctx.diagonal), None


class Tril(_Triangle):
    kernel = "tril"


class Triu(_Triangle):
    kernel = "triu"


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """Keep x[..., i, j] where j - i <= diagonal, zero elsewhere."""
    if input.ndim < 2:
        raise RuntimeError(f"tril: input tensor must have at least 2 dimensions, got shape "
                           f"{tuple(input.shape)}")
    return Tril.apply(input, int(diagonal))


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """Keep x[..., i, j] where j - i >= diagonal, zero elsewhere."""
    if input.ndim < 2:
        raise RuntimeError(f"triu: input tensor must have at least 2 dimensions, got shape "
                           f"{tuple(input.shape)}")
    return Triu.apply(input, int(diagonal))


class PadConstant(Function):
    @staticmethod
    def forward(ctx, x, pads, value):
        ctx.index = tuple(slice(b, b + n, 1) for (b, _), n in zip(pads, x.shape))
        return _complex_out(ctx, run("pad_constant", x, pads, value))

    @staticmethod
    def backward(ctx, g):
        return Slice.apply(g, ctx.index), None, None


def _pad_index(n: int, before: int, after: int, mode: str, dim: int, shape) -> list:
    """Source index of every output position along one padded dim, for the non-constant modes."""
    if mode == "reflect" and (before >= n or after >= n):
        raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input "
                           f"dimension, but got: padding ({before}, {after}) at dimension {dim} of input "
                           f"{list(shape)}")
    if mode == "circular" and (before > n or after > n):
        raise RuntimeError(f"Padding value causes wrapping around more than once (padding ({before}, "
                           f"{after}) at dimension {dim} of input {list(shape)})")
    if n == 0:
        raise RuntimeError(f"pad: {mode} padding needs a non-empty dimension {dim} (input {list(shape)})")
    out = []
    for i in range(-before, n + after):
        if mode == "reflect":
            j = -i if i < 0 else (2 * (n - 1) - i if i >= n else i)
        elif mode == "replicate":
            j = min(max(i, 0), n - 1)
        else:
            j = i % n
        out.append(j)
    return out


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """torch.nn.functional.pad: `pad` = (left, right) for the last dim, then the one before, ...
    'constant' fills `value` (negative pads crop); 'reflect' mirrors without the edge, 'replicate'
    repeats the edge, 'circular' wraps around."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError(f"Padding length must be divisible by 2, got pad={pad}")
    k = len(pad) // 2
    if k > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension "
                           f"but got padding length {len(pad)} and input of dimension {input.ndim}")
    pairs = {input.ndim - 1 - i: (pad[2 * i], pad[2 * i + 1]) for i in range(k)}
    if mode == "constant":
        x = input
        for d, (b, a) in pairs.items():  # negative pads crop first
            if b < 0 or a < 0:
                lo, hi = max(-b, 0), x.shape[d] - max(-a, 0)
                if hi < lo:
                    raise RuntimeError(f"pad: the cropping pads ({b}, {a}) remove more than the size "
                                       f"{x.shape[d]} of dimension {d} (input {list(input.shape)})")
                x = narrow(x, d, lo, hi - lo)
        pads = tuple((max(pairs[d][0], 0), max(pairs[d][1], 0)) if d in pairs else (0, 0)
                     for d in range(x.ndim))
        if all(p == (0, 0) for p in pads):
            return x.clone() if x is input else x
        return PadConstant.apply(x, pads, 0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value not in (None, 0):
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument (got value={value})")
    if input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\nSupported "
            "combinations for non-constant padding:\n  - 2D or 3D input: padding size = 2 (pads last "
            "dimension)\n  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n  - 4D or 5D input: "
            "padding size = 6 (pads last 3 dimensions)")
    x = input
    for d, (b, a) in pairs.items():
        if b < 0 or a < 0:
            raise RuntimeError(f"pad: negative padding ({b}, {a}) is only supported in constant mode")
        idx = _pad_index(x.shape[d], b, a, mode, d, input.shape)
        x = x.index_select(d, tensor(idx, device=input.device))
    return x
