"""Convolution ops (torch.nn.functional.conv1d / conv2d / conv_transpose1d / conv_transpose2d);
pooling and interpolation live in ops/pool.py and are re-exported here (the pooling family:
backends/*/pool.py, csrc/pool.cpp).

    y[n, o] = b[o] + sum_{c in group(o), p, q} w[o, c, p, q] x[n, c, i*sh + p*dh - pt, j*sw + q*dw - pl]

Forward and backward are single kernels (conv2d_forward / conv2d_backward: im2col + GEMM, or on
the cpu Winograd F(2x2, 3x3) for wide 3x3 stride-1 layers: backends/cpu/conv.py);
conv1d is conv2d over a height-1 image, through views, so it needs no kernels of its own.

conv_transpose2d is the adjoint of conv2d in its input: with conv2d's weight layout read as
(C_in, C_out/G, kh, kw), conv_transpose2d(x, w) = conv2d's input gradient for dy = x, over an
output of size (H - 1) s - 2 p + d (k - 1) + output_padding + 1. So its forward runs conv2d_backward
(dx only), and its backward runs conv2d_forward (dx = conv2d(dy, w)) and conv2d_backward (dw, with
the roles of input and output gradient swapped): no kernels of its own either.
"""
from __future__ import annotations

from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from .creation import empty
from .pool import *  # noqa: F403  (the pooling ops are part of this family's namespace)
from .pool import __all__ as _pool_all
from .pool import _int_tuple

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"] + list(_pool_all)


class Conv2dFn(Function):
    once_differentiable = "conv2d_backward"  # kernel-only backward: no create_graph formula

    @staticmethod
    def forward(ctx, x, w, b, stride, pads, dilation, groups):
        ctx.save_for_backward(x, w)
        ctx.args = (stride, pads, dilation, groups)
        return run("conv2d_forward", x, w, b, stride, pads, dilation, groups)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        needs = tuple(bool(n) for n in ctx.needs_input_grad[:3])
        dx, dw, db = run("conv2d_backward", x, w, g, *ctx.args, needs)
        return dx, dw, db, None, None, None, None


def _check_conv(fn: str, x: Tensor, w: Tensor, b: Tensor | None, groups: int, nd: int) -> None:
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise TypeError(f"{fn}: input and weight must be Tensors, got {type(x).__name__} and "
                        f"{type(w).__name__}")
    if w.ndim != nd + 2:
        raise RuntimeError(f"{fn}: expected weight to be {nd + 2}-D, but got weight of shape "
                           f"{tuple(w.shape)}")
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {fn}, but got "
                           f"input of size: {list(x.shape)}")
    if not x.dtype.is_floating_point or x.dtype is not w.dtype or (b is not None and b.dtype is not x.dtype):
        raise RuntimeError(f"{fn}: input, weight and bias must have one floating dtype, got input {x.dtype}, "
                           f"weight {w.dtype}" + (f", bias {b.dtype}" if b is not None else ""))
    if 0 in w.shape[2:]:
        raise RuntimeError(f"{fn}: kernel size should be greater than zero, got weight of shape "
                           f"{tuple(w.shape)}")
    if groups < 1 or w.shape[0] % groups:
        raise RuntimeError(f"{fn}: out_channels ({w.shape[0]}) must be divisible by groups ({groups})")
    if w.shape[0] == 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least 1 at dimension 0, but got "
                           f"weight of size {list(w.shape)} instead")
    c = x.shape[-nd - 1]
    if c != w.shape[1] * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(w.shape)}, expected "
                           f"input{list(x.shape)} to have {w.shape[1] * groups} channels, but got {c} "
                           f"channels instead")
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise RuntimeError(f"{fn}: bias must have shape ({w.shape[0]},) for weight {list(w.shape)}, got "
                           f"{tuple(b.shape)}")


def _pads(padding, kernel: tuple, stride: tuple, dilation: tuple, fn: str) -> tuple:
    """(lo, hi) per spatial dim; 'same' puts the odd extra pixel at the end, as PyTorch does."""
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in kernel)
        if padding != "same":
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{fn}: padding='same' is not supported for strided convolutions "
                             f"(stride {stride})")
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    p = _int_tuple(padding, "padding", fn, len(kernel))
    if any(v < 0 for v in p):
        raise RuntimeError(f"{fn}: negative padding is not supported, got {p}")
    return tuple((v, v) for v in p)


def _conv(fn: str, x, w, b, stride, padding, dilation, groups, nd: int) -> Tensor:
    _check_conv(fn, x, w, b, groups, nd)
    stride, dilation = _int_tuple(stride, "stride", fn, nd), _int_tuple(dilation, "dilation", fn, nd)
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise RuntimeError(f"{fn}: stride {stride} and dilation {dilation} must be positive")
    kernel = tuple(w.shape[2:])
    pads = _pads(padding, kernel, stride, dilation, fn)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    for i, (size, k, d, (lo, hi)) in enumerate(zip(x.shape[2:], kernel, dilation, pads)):
        if size + lo + hi < d * (k - 1) + 1:
            raise RuntimeError(f"{fn}: Calculated padded input size per channel: ({size + lo + hi}) at "
                               f"spatial dim {i}. Kernel size: ({d * (k - 1) + 1}) (dilated). Kernel size "
                               f"can't be greater than actual input size (input {list(x.shape)}, weight "
                               f"{list(w.shape)})")
    if nd == 1:
        y = Conv2dFn.apply(x.unsqueeze(2), w.unsqueeze(2), b, (1, stride[0]), (0, 0) + pads[0],
                           (1, dilation[0]), groups).squeeze(2)
    else:
        y = Conv2dFn.apply(x, w, b, stride, pads[0] + pads[1], dilation, groups)
    return y.squeeze(0) if unbatched else y


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-d convolution (cross-correlation) over (N, C, H, W) or (C, H, W), torch.nn.functional.conv2d."""
    return _conv("conv2d", input, weight, bias, stride, padding, dilation, groups, 2)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-d convolution over (N, C, L) or (C, L), torch.nn.functional.conv1d."""
    return _conv("conv1d", input, weight, bias, stride, padding, dilation, groups, 1)


class ConvTranspose2dFn(Function):
    once_differentiable = "conv2d_backward"  # kernel-only backward: no create_graph formula

    @staticmethod
    def forward(ctx, x, w, b, stride, pads, dilation, groups, out_hw):
        """x (N, C_in, H, W), w (C_in, C_out/G, kh, kw) -> (N, C_out, *out_hw)."""
        # conv2d's input gradient reads its input only for the shape: an uninitialised placeholder
        shape = (x.shape[0], w.shape[1] * groups) + tuple(out_hw)
        placeholder = empty(shape, dtype=x.dtype, device=x.device)
        y, _, _ = run("conv2d_backward", placeholder, w, x, stride, pads, dilation, groups,
                      (True, False, False))
        if b is not None:
            y.add_(b.reshape(1, -1, 1, 1))  # y is fresh: add the bias in place
        ctx.save_for_backward(x, w)
        ctx.args = (stride, pads, dilation, groups)
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.args
        need = ctx.needs_input_grad
        dx = dw = db = None
        if need[0]:  # the adjoint of the adjoint: conv2d of the output gradient
            dx = run("conv2d_forward", g, w, None, stride, pads, dilation, groups)
        if need[1]:  # conv2d's weight gradient with input g and output gradient x
            _, dw, _ = run("conv2d_backward", g, w, x, stride, pads, dilation, groups, (False, True, False))
        if need[2]:
            db = g.sum((0, 2, 3))
        return dx, dw, db, None, None, None, None, None


def _conv_transpose(fn: str, x, w, b, stride, padding, output_padding, groups, dilation, nd: int) -> Tensor:
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise TypeError(f"{fn}: input and weight must be Tensors, got {type(x).__name__} and "
                        f"{type(w).__name__}")
    if w.ndim != nd + 2:
        raise RuntimeError(f"{fn}: expected weight to be {nd + 2}-D, but got weight of shape "
                           f"{tuple(w.shape)}")
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {fn}, but got "
                           f"input of size: {list(x.shape)}")
    if not x.dtype.is_floating_point or x.dtype is not w.dtype or (b is not None and b.dtype is not x.dtype):
        raise RuntimeError(f"{fn}: input, weight and bias must have one floating dtype, got input {x.dtype}, "
                           f"weight {w.dtype}" + (f", bias {b.dtype}" if b is not None else ""))
    if groups < 1 or w.shape[0] % groups:
        raise RuntimeError(f"{fn}: in_channels ({w.shape[0]}) must be divisible by groups ({groups})")
    if 0 in w.shape[2:]:
        raise RuntimeError(f"{fn}: kernel size should be greater than zero, got weight of shape "
                           f"{tuple(w.shape)}")
    c = x.shape[-nd - 1]
    if c != w.shape[0]:
        raise RuntimeError(f"Given transposed=1, weight of size {list(w.shape)}, expected "
                           f"input{list(x.shape)} to have {w.shape[0]} channels, but got {c} channels "
                           "instead")
    if b is not None and tuple(b.shape) != (w.shape[1] * groups,):
        raise RuntimeError(f"{fn}: bias must have shape ({w.shape[1] * groups},) for weight "
                           f"{list(w.shape)} and groups={groups}, got {tuple(b.shape)}")
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple of ints, got {padding!r} (a string "
                         "padding is only for conv1d/conv2d)")
    stride, dilation = _int_tuple(stride, "stride", fn, nd), _int_tuple(dilation, "dilation", fn, nd)
    padding, output_padding = _int_tuple(padding, "padding", fn, nd), _int_tuple(output_padding,
                                                                                  "output_padding", fn, nd)
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation) or any(p < 0 for p in padding):
        raise RuntimeError(f"{fn}: stride {stride} and dilation {dilation} must be positive, padding "
                           f"{padding} non-negative")
    if any(op < 0 or (op >= s and op >= d) for op, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeError(f"{fn}: output padding must be smaller than either stride or dilation, but got "
                           f"output_padding {output_padding}, stride {stride}, dilation {dilation}")
    kernel = tuple(w.shape[2:])
    geometry = zip(x.shape[-nd:], stride, padding, dilation, kernel, output_padding)
    sizes = tuple((size - 1) * s - 2 * p + d * (k - 1) + op + 1 for size, s, p, d, k, op in geometry)
    if any(o < 1 for o in sizes):
        raise RuntimeError(f"{fn}: the output size {list(sizes)} is too small for input {list(x.shape)}, "
                           f"weight {list(w.shape)}, stride {stride}, padding {padding}, dilation {dilation}")
    # as conv2d pads: top/left p; bottom/right so that conv2d of the output has exactly the input's
    # size (p, less whole strides of output_padding when output_padding >= stride: a crop)
    pads = tuple((p, p - (op // s) * s) for p, op, s in zip(padding, output_padding, stride))
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    if nd == 1:
        y = ConvTranspose2dFn.apply(x.unsqueeze(2), w.unsqueeze(2), b, (1, stride[0]), (0, 0) + pads[0],
                                    (1, dilation[0]), groups, (1, sizes[0])).squeeze(2)
    else:
        y = ConvTranspose2dFn.apply(x, w, b, stride, pads[0] + pads[1], dilation, groups, sizes)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-d transposed convolution over (N, C_in, H, W) or (C_in, H, W) with weight (C_in, C_out/groups,
    kh, kw): the adjoint of conv2d, torch.nn.functional.conv_transpose2d."""
    return _conv_transpose("conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 2)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-d transposed convolution over (N, C_in, L) or (C_in, L), torch.nn.functional.conv_transpose1d."""
    return _conv_transpose("conv_transpose1d", input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 1)
