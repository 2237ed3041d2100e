"""Pooling and interpolation ops (torch.nn.functional semantics), part of the conv family.

    max_pool2d:  y = max over each (dilated) window of x padded with -inf; dx = dy at the argmax
    avg_pool2d:  y = window sum / divisor (count_include_pad, divisor_override); dx = the adjoint
    adaptive_avg_pool2d: windows [floor(i H / oh), ceil((i + 1) H / oh))
    adaptive_max_pool2d: the max over those windows, by index_select / argmax / gather (no kernel)
    max_pool1d, avg_pool1d, adaptive_{avg,max}_pool1d: the 2-d ops over (N, C, 1, L) views
    interpolate: y = Mh x Mw^T, Mh and Mw the nearest / (bi)linear interpolation matrices; dx = Mh^T dy Mw

Each is one forward and one backward kernel over (N, C, H, W); unbatched (C, H, W) inputs and
3-d inputs to interpolate (N, C, L) go through views.
"""
from __future__ import annotations

import math
import operator

from .. import dtypes as _dt
from .._graph import adjoint
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from .creation import tensor, zeros

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "interpolate",
    "max_pool1d",
    "max_pool2d",
    "upsample",
    "upsample_bilinear",
    "upsample_nearest",
]


def _int_tuple(v, name: str, fn: str, n: int = 2) -> tuple:
    """An int or a sequence of 1 or n ints as an n-tuple (one per spatial dim); anything else (a float, a
    string) is a TypeError naming the argument, as in PyTorch, rather than a silent int() truncation.
    Shared with ops/conv.py."""
    items = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    try:
        items = tuple(operator.index(a) for a in items)
    except TypeError:
        raise TypeError(f"{fn}: argument '{name}' must be an int or a tuple of ints, got {v!r}") from None
    if len(items) == 1:
        return items * n
    if len(items) != n:
        raise ValueError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return items


def _batched(fn: str, x: Tensor, empty_channels: bool = False) -> tuple[Tensor, bool]:
    """x as (N, C, H, W), and whether it came unbatched (C, H, W). Only the batch may be empty, as in
    PyTorch (with empty_channels, C too: adaptive_avg_pool2d's rule)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise RuntimeError(f"{fn}: Expected 3D or 4D (batch mode) tensor for input, but got input of shape "
                           f"{tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{fn}: expected a floating point input, got dtype {x.dtype}")
    sizes = x.shape[x.ndim - 2:] if empty_channels else x.shape[x.ndim - 3:]
    if 0 in sizes:
        what = "H and W" if empty_channels else "C, H and W"
        raise RuntimeError(f"{fn}: expected non-zero {what} (only the batch may be empty), but got input of "
                           f"shape {tuple(x.shape)}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def _pool_out(size, k, s, p, d, ceil_mode):
    num = size + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_args(fn, x, kernel_size, stride, padding, dilation, ceil_mode):
    k = _int_tuple(kernel_size, "kernel_size", fn)
    empty = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if empty else _int_tuple(stride, "stride", fn)
    p, d = _int_tuple(padding, "padding", fn), _int_tuple(dilation, "dilation", fn)
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise RuntimeError(f"{fn}: kernel_size {k}, stride {s} and dilation {d} must be positive")
    for i in range(2):
        # PyTorch's rule: half the kernel size, whatever the dilation (every window keeps an input element)
        if p[i] < 0 or 2 * p[i] > k[i]:
            raise RuntimeError(f"{fn}: pad should be at most half of kernel size (and not negative), but "
                               f"got pad={p[i]} and kernel_size={k[i]}")
    oh = _pool_out(x.shape[2], k[0], s[0], p[0], d[0], ceil_mode)
    ow = _pool_out(x.shape[3], k[1], s[1], p[1], d[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise RuntimeError(f"{fn}: Given input size: ({x.shape[1]}x{x.shape[2]}x{x.shape[3]}). Calculated "
                           f"output size: ({x.shape[1]}x{oh}x{ow}). Output size is too small")
    return k, s, p, d


class MaxPool2dFn(Function):
    @staticmethod
    def forward(ctx, x, k, s, p, d, ceil_mode):
        y, idx = run("max_pool2d_forward", x, k, s, p, d, ceil_mode)
        ctx.save_for_backward(idx)
        ctx.in_shape = x.shape
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(idx)
        return y, idx

    @staticmethod
    def backward(ctx, g, _g_idx):
        (idx,) = ctx.saved_tensors
        if g is None:
            return (None,) * 6
        dx = run("max_pool2d_backward", g, idx, ctx.in_shape)  # scatter-adds g at the flat argmax idx
        if is_grad_enabled():  # create_graph: dx is linear in g (idx is constant); d/dg gathers at idx
            dx = adjoint(g, dx, MaxPool2dFn.gather, idx)
        return dx, None, None, None, None, None

    @staticmethod
    def gather(gg, idx):
        """gg (N, C, H, W) at the flat h * W + w indices idx (N, C, oh, ow)."""
        return gg.flatten(2).gather(2, idx.flatten(2)).reshape(idx.shape)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over k x k windows; with return_indices, also the flat h * W + w index of each max."""
    x, unbatched = _batched("max_pool2d", input)
    k, s, p, d = _pool_args("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    y, idx = MaxPool2dFn.apply(x, k, s, p, d, bool(ceil_mode))
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


class AvgPool2dFn(Function):
    @staticmethod
    def forward(ctx, x, *args):
        ctx.in_shape, ctx.args = x.shape, args
        return run("avg_pool2d_forward", x, *args)

    @staticmethod
    def backward(ctx, g):
        dx = run("avg_pool2d_backward", g, ctx.in_shape, *ctx.args)
        dx = adjoint(g, dx, AvgPool2dFn.apply, *ctx.args) if is_grad_enabled() else dx  # create_graph: d/dg
        return (dx,) + (None,) * len(ctx.args)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over k x k windows (torch.nn.functional.avg_pool2d)."""
    x, unbatched = _batched("avg_pool2d", input)
    k, s, p, _ = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("avg_pool2d: divisor must be not zero")
    y = AvgPool2dFn.apply(x, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override)
    return y.squeeze(0) if unbatched else y


class AdaptiveAvgPool2dFn(Function):
    @staticmethod
    def forward(ctx, x, out_size):
        ctx.in_shape = x.shape
        if 0 in x.shape[:2] + out_size:  # an empty result has no windows to average: no kernel to run
            return zeros(*x.shape[:2], *out_size, dtype=x.dtype, device=x.device)
        return run("adaptive_avg_pool2d_forward", x, out_size)

    @staticmethod
    def backward(ctx, g):
        if g.numel() == 0:  # no output reads x: a zero gradient
            return zeros(*ctx.in_shape, dtype=g.dtype, device=g.device), None
        dx = run("adaptive_avg_pool2d_backward", g, ctx.in_shape)
        if is_grad_enabled():  # create_graph: dx is linear in g; d/dg pools again
            dx = adjoint(g, dx, AdaptiveAvgPool2dFn.apply, tuple(g.shape[2:]))
        return dx, None


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed (oh, ow); None in output_size keeps that input size."""
    x, unbatched = _batched("adaptive_avg_pool2d", input, empty_channels=True)
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    out = tuple(x.shape[2 + i] if v is None else int(v) for i, v in enumerate(output_size))
    if len(out) != 2 or min(out) < 0:  # an output size of 0 is an empty result, as in PyTorch
        raise RuntimeError(f"adaptive_avg_pool2d: output_size must be 2 non-negative ints, got {output_size}")
    y = AdaptiveAvgPool2dFn.apply(x, out)
    return y.squeeze(0) if unbatched else y


class Upsample2dFn(Function):
    @staticmethod
    def forward(ctx, x, size, mode, align_corners, scales):
        ctx.in_shape, ctx.args = x.shape, (mode, align_corners, scales)
        return run("upsample2d_forward", x, size, mode, align_corners, scales)

    @staticmethod
    def backward(ctx, g):
        dx = run("upsample2d_backward", g, ctx.in_shape, *ctx.args)
        if is_grad_enabled():  # create_graph: dx is linear in g; d/dg upsamples again
            dx = adjoint(g, dx, Upsample2dFn.apply, tuple(g.shape[2:]), *ctx.args)
        return dx, None, None, None, None


_MODES = {3: ("nearest", "nearest-exact", "linear"), 4: ("nearest", "nearest-exact", "bilinear")}


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize (N, C, L) or (N, C, H, W) by `size` or `scale_factor` (torch.nn.functional.interpolate);
    modes nearest, nearest-exact, linear (3-d) and bilinear (4-d)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: expected a Tensor, got {type(input).__name__}")
    nd = input.ndim
    if nd not in _MODES or mode not in _MODES[nd]:
        raise NotImplementedError(f"interpolate: input of shape {tuple(input.shape)} ({nd}-D) with mode "
                                  f"{mode!r} is not supported; supported: 3-D {_MODES[3]}, 4-D {_MODES[4]}")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"interpolate: expected a floating point input, got dtype {input.dtype}")
    if 0 in input.shape[1:]:
        raise RuntimeError(f"interpolate: Non-empty {nd}D data tensor expected (only the batch may be "
                           f"empty) but got a tensor of shape {tuple(input.shape)}")
    linear = mode in ("linear", "bilinear")
    if align_corners is not None and not linear:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | "
                         "bilinear | bicubic | trilinear")
    align_corners = bool(align_corners) if linear else False
    sp = nd - 2
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None else
                         "either size or scale_factor should be defined")
    if size is not None:
        out = (int(size),) * sp if isinstance(size, int) else tuple(int(v) for v in size)
        if len(out) != sp:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but "
                             f"got input with spatial dimensions of {list(input.shape[2:])} and output size "
                             f"of {list(out)}")
        scales = (None,) * sp
    else:
        sf = (float(scale_factor),) * sp if isinstance(scale_factor, (int, float)) else tuple(
            float(v) for v in scale_factor)
        if not all(math.isfinite(f) for f in sf):
            raise ValueError(f"interpolate: scale_factor must be finite, got {scale_factor}")
        if len(sf) != sp:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but "
                             f"got input with spatial dimensions of {list(input.shape[2:])} and scale_factor "
                             f"of shape {list(sf)}")
        out = tuple(math.floor(float(n) * f) for n, f in zip(input.shape[2:], sf))
        scales = (None,) * sp if recompute_scale_factor else sf
    if min(out) < 1:
        raise ValueError(f"interpolate: output size {out} must be positive (input {tuple(input.shape)})")
    kmode = "bilinear" if linear else mode
    if nd == 3:
        y = Upsample2dFn.apply(input.unsqueeze(2), (1, out[0]), kmode, align_corners, (None, scales[0]))
        return y.squeeze(2)
    return Upsample2dFn.apply(input, out, kmode, align_corners, scales)


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
             align_corners=None) -> Tensor:
    """Deprecated alias of interpolate, as in PyTorch."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _adaptive_windows(size: int, out: int) -> list[range]:
    """PyTorch's adaptive windows: [floor(i size / out), ceil((i + 1) size / out)) for i < out."""
    return [range(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max pooling to a fixed (oh, ow) over adaptive_avg_pool2d's windows; with return_indices, also
    the flat h * W + w index of each max. A composition: the windows' flat indices (each padded to
    the largest window by repeating its first element, which leaves the max unchanged) gather x,
    argmax picks the first maximum (NaN wins, as in PyTorch), and a gather of x at those indices is
    the output, so the gradient goes to that one element."""
    x, unbatched = _batched("adaptive_max_pool2d", input)
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    out = tuple(x.shape[2 + i] if v is None else int(v) for i, v in enumerate(output_size))
    if len(out) != 2 or min(out) < 1:
        raise RuntimeError(f"adaptive_max_pool2d: output_size must be 2 positive ints, got {output_size}")
    n, c, h, w = x.shape
    rows, cols = _adaptive_windows(h, out[0]), _adaptive_windows(w, out[1])
    kh, kw = max(len(r) for r in rows), max(len(r) for r in cols)
    table = []  # (oh * ow, kh * kw) flat indices into h * w
    for r in rows:
        for cl in cols:
            cell = [i * w + j for i in r for j in cl]
            table.append(cell + [cell[0]] * (kh * kw - len(cell)))
    table_t = tensor(table, dtype=_dt.int64, device=x.device)
    flat = x.flatten(2)  # (N, C, H W)
    windows = flat.detach().index_select(2, table_t.flatten()).reshape(n, c, len(table), kh * kw)
    pick = windows.argmax(-1, keepdim=True)  # (N, C, cells, 1)
    idx = table_t.expand(n, c, len(table), kh * kw).gather(3, pick).reshape(n, c, len(table))
    y = flat.gather(2, idx).reshape(n, c, *out)
    idx = idx.reshape(n, c, *out)
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def _as_2d(fn: str, input: Tensor) -> Tensor:
    """(N, C, L) or (C, L) as (N, C, 1, L) / (C, 1, L), so that a 1-d pool runs the 2-d one."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {type(input).__name__}")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{fn}: Expected 2D or 3D (batch mode) tensor for input, but got input of shape "
                           f"{tuple(input.shape)}")
    return input.unsqueeze(-2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """max_pool2d over (N, C, 1, L) with 1 x k windows; indices are positions along L."""
    one = lambda v, name: (1, _int_tuple(v, name, "max_pool1d", 1)[0])  # noqa: E731
    stride = None if stride is None or stride == () or stride == [] else one(stride, "stride")
    y = max_pool2d(_as_2d("max_pool1d", input), one(kernel_size, "kernel_size"), stride,
                   (0, one(padding, "padding")[1]), one(dilation, "dilation"), ceil_mode, return_indices)
    return (y[0].squeeze(-2), y[1].squeeze(-2)) if return_indices else y.squeeze(-2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """avg_pool2d over (N, C, 1, L) with 1 x k windows."""
    one = lambda v, name: (1, _int_tuple(v, name, "avg_pool1d", 1)[0])  # noqa: E731
    stride = None if stride is None or stride == () or stride == [] else one(stride, "stride")
    return avg_pool2d(_as_2d("avg_pool1d", input), one(kernel_size, "kernel_size"), stride,
                      (0, one(padding, "padding")[1]), ceil_mode, count_include_pad).squeeze(-2)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """adaptive_avg_pool2d over (N, C, 1, L) to (1, output_size)."""
    size = _int_tuple(output_size, "output_size", "adaptive_avg_pool1d", 1)[0]
    return adaptive_avg_pool2d(_as_2d("adaptive_avg_pool1d", input), (1, size)).squeeze(-2)


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """adaptive_max_pool2d over (N, C, 1, L) to (1, output_size); indices are positions along L."""
    size = _int_tuple(output_size, "output_size", "adaptive_max_pool1d", 1)[0]
    y = adaptive_max_pool2d(_as_2d("adaptive_max_pool1d", input), (1, size), return_indices)
    return (y[0].squeeze(-2), y[1].squeeze(-2)) if return_indices else y.squeeze(-2)
