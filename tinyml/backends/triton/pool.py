"""Triton kernels: 2-d pooling and upsampling for the cuda device, x (N, C, H, W) contiguous.

    max_pool2d_forward    one lane per output: the window scanned in order (kh, kw constexpr);
                          the first maximum on ties, a NaN wins; idx = h * W + w in the plane
    max_pool2d_backward   dx[plane, idx] += dy (atomic adds: windows may overlap; float32)
    avg_pool2d_forward    window sum / divisor (PyTorch's divisor rules, computed per output)
    avg_pool2d_backward   a gather per input element over the windows covering it (no atomics)
    adaptive_avg_pool2d   window i = [floor(i H / oh), ceil((i + 1) H / oh)); the backward spreads
                          dy / area with atomic adds
    upsample2d            two taps per output index and dim (PyTorch's source-index rules,
                          computed on the host by the reference's interp_taps and uploaded):
                          y = sum of four weighted taps; the backward scatters with atomic adds
16-bit floats compute (and accumulate) in float32.
Tests: python -m pytest tests/ops/test_conv.py tests/ops/test_pool.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray, from_host
from ..reference.pool import interp_taps, pool_out_size
from ._rows import load_up
from ._strided import BLOCK, grid
from .creation import cast, contiguous, full

__all__ = [
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "upsample2d_backward",
    "upsample2d_forward",
]

SMALL = 256  # pool kernels unroll the window: fewer lanes per program keeps compile size small


@triton.jit
def _max_pool_kernel(x, y, idx, total, H, W, OH, OW, sh, sw, ph, pw, dh, dw, KH: tl.constexpr, KW: tl.constexpr,
                     ACC: tl.constexpr, BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < total
    oj = o % OW
    oi = (o // OW) % OH
    plane = o // (OW * OH)
    best = tl.full((BLOCK,), float("-inf"), ACC)
    best_idx = tl.full((BLOCK,), -1, tl.int64)
    found_nan = tl.zeros((BLOCK,), tl.int1)
    for p in tl.static_range(KH):
        for q in tl.static_range(KW):
            r = oi * sh - ph + p * dh
            c = oj * sw - pw + q * dw
            inside = m & (r >= 0) & (r < H) & (c >= 0) & (c < W)
            v = load_up(x + plane * H * W + r * W + c, inside, float("-inf")).to(ACC)
            is_nan = inside & (v != v)  # noqa: PLR0124 (x != x: NaN test)
            take = inside & (~found_nan) & (is_nan | (v > best) | (best_idx < 0))
            best = tl.where(take, v, best)
            best_idx = tl.where(take, r * W + c, best_idx)
            found_nan = found_nan | is_nan
    tl.store(y + o, best.to(y.dtype.element_ty), mask=m)
    tl.store(idx + o, best_idx, mask=m)


@triton.jit
def _scatter_plane_kernel(dy, idx, dx, total, HW, OHW, ACC: tl.constexpr, BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < total
    i = tl.load(idx + o, mask=m, other=0)
    g = load_up(dy + o, m, 0).to(ACC)
    tl.atomic_add(dx + (o // OHW) * HW + i, g, mask=m & (i >= 0))


@triton.jit
def _avg_divisor(oi, oj, H, W, sh, sw, ph, pw, KH: tl.constexpr, KW: tl.constexpr, INCLUDE_PAD: tl.constexpr,
                 override):
    hs = oi * sh - ph
    ws = oj * sw - pw
    he = tl.minimum(hs + KH, H + ph)
    we = tl.minimum(ws + KW, W + pw)
    if not INCLUDE_PAD:
        hs = tl.maximum(hs, 0)
        ws = tl.maximum(ws, 0)
        he = tl.minimum(he, H)
        we = tl.minimum(we, W)
    div = ((he - hs) * (we - ws)).to(tl.float32)
    return tl.where(override > 0, override, div)


@triton.jit
def _avg_pool_kernel(x, y, total, H, W, OH, OW, sh, sw, ph, pw, override, KH: tl.constexpr, KW: tl.constexpr,
                     INCLUDE_PAD: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < total
    oj = o % OW
    oi = (o // OW) % OH
    plane = o // (OW * OH)
    acc = tl.zeros((BLOCK,), ACC)
    for p in tl.static_range(KH):
        for q in tl.static_range(KW):
            r = oi * sh - ph + p
            c = oj * sw - pw + q
            inside = m & (r >= 0) & (r < H) & (c >= 0) & (c < W)
            acc += load_up(x + plane * H * W + r * W + c, inside, 0).to(ACC)
    div = _avg_divisor(oi, oj, H, W, sh, sw, ph, pw, KH, KW, INCLUDE_PAD, override)
    tl.store(y + o, (acc / div).to(y.dtype.element_ty), mask=m)


@triton.jit
def _avg_pool_backward_kernel(dy, dx, total, H, W, OH, OW, sh, sw, ph, pw, override, KH: tl.constexpr,
                              KW: tl.constexpr, INCLUDE_PAD: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = e < total
    c = e % W
    r = (e // W) % H
    plane = e // (W * H)
    acc = tl.zeros((BLOCK,), ACC)
    for p in tl.static_range(KH):
        for q in tl.static_range(KW):
            ti = r + ph - p  # = oi * sh for the window whose tap p lands on row r
            tj = c + pw - q
            oi = ti // sh
            oj = tj // sw
            ok = m & (ti >= 0) & (tj >= 0) & (ti % sh == 0) & (tj % sw == 0) & (oi < OH) & (oj < OW)
            g = load_up(dy + plane * OH * OW + oi * OW + oj, ok, 0).to(ACC)
            div = _avg_divisor(oi, oj, H, W, sh, sw, ph, pw, KH, KW, INCLUDE_PAD, override)
            acc += tl.where(ok, g / div, 0.0)
    tl.store(dx + e, acc.to(dx.dtype.element_ty), mask=m)


@triton.jit
def _adaptive_kernel(x, y, total, H, W, OH, OW, MAXH: tl.constexpr, MAXW: tl.constexpr, BACKWARD: tl.constexpr,
                     ACC: tl.constexpr, BLOCK: tl.constexpr):
    """Forward: y[o] = mean of x over o's window. Backward (x = dy, y = dx in float32): dx += dy / area."""
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < total
    oj = o % OW
    oi = (o // OW) % OH
    plane = o // (OW * OH)
    hs = (oi * H) // OH
    he = ((oi + 1) * H + OH - 1) // OH
    ws = (oj * W) // OW
    we = ((oj + 1) * W + OW - 1) // OW
    area = ((he - hs) * (we - ws)).to(ACC)
    if BACKWARD:
        g = load_up(x + o, m, 0).to(ACC) / area
    acc = tl.zeros((BLOCK,), ACC)
    for p in tl.static_range(MAXH):
        for q in tl.static_range(MAXW):
            r = hs + p
            c = ws + q
            ok = m & (r < he) & (c < we)
            if BACKWARD:
                tl.atomic_add(y + plane * H * W + r * W + c, g, mask=ok)
            else:
                acc += load_up(x + plane * H * W + r * W + c, ok, 0).to(ACC)
    if not BACKWARD:
        tl.store(y + o, (acc / area).to(y.dtype.element_ty), mask=m)


@triton.jit
def _upsample_kernel(x, y, total, H, W, OH, OW, h0, h1, hl, w0, w1, wl, BACKWARD: tl.constexpr,
                     ACC: tl.constexpr, BLOCK: tl.constexpr):
    """Forward: y[o] = sum of the four weighted taps of x. Backward (x = dy, y = dx float32): scatter."""
    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = o < total
    oj = o % OW
    oi = (o // OW) % OH
    base = (o // (OW * OH)) * H * W
    a0 = tl.load(h0 + oi, mask=m, other=0)
    a1 = tl.load(h1 + oi, mask=m, other=0)
    la = tl.load(hl + oi, mask=m, other=0).to(ACC)
    b0 = tl.load(w0 + oj, mask=m, other=0)
    b1 = tl.load(w1 + oj, mask=m, other=0)
    lb = tl.load(wl + oj, mask=m, other=0).to(ACC)
    if BACKWARD:
        g = load_up(x + o, m, 0).to(ACC)
        tl.atomic_add(y + base + a0 * W + b0, g * (1 - la) * (1 - lb), mask=m)
        tl.atomic_add(y + base + a0 * W + b1, g * (1 - la) * lb, mask=m)
        tl.atomic_add(y + base + a1 * W + b0, g * la * (1 - lb), mask=m)
        tl.atomic_add(y + base + a1 * W + b1, g * la * lb, mask=m)
    else:
        v00 = load_up(x + base + a0 * W + b0, m, 0).to(ACC)
        v01 = load_up(x + base + a0 * W + b1, m, 0).to(ACC)
        v10 = load_up(x + base + a1 * W + b0, m, 0).to(ACC)
        v11 = load_up(x + base + a1 * W + b1, m, 0).to(ACC)
        r = (1 - la) * ((1 - lb) * v00 + lb * v01) + la * ((1 - lb) * v10 + lb * v11)
        tl.store(y + o, r.to(y.dtype.element_ty), mask=m)


def _tl_acc(dtype):
    return tl.float64 if np.dtype(dtype) == np.float64 else tl.float32


def _acc_dtype(dtype) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def max_pool2d_forward(x: CudaArray, kernel_size, stride, padding, dilation, ceil_mode):
    """(y, indices): window maxima and their flat h * W + w positions in the plane."""
    n, c, h, w = x.shape
    oh = pool_out_size(h, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(w, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    y, idx = CudaArray.empty((n, c, oh, ow), x.dtype), CudaArray.empty((n, c, oh, ow), np.int64)
    total = y.numel()
    if total:
        _max_pool_kernel[grid(total, SMALL)](contiguous(x), y, idx, total, h, w, oh, ow, *stride, *padding, *dilation,
                                              KH=kernel_size[0], KW=kernel_size[1], ACC=_tl_acc(x.dtype), BLOCK=SMALL)
    return y, idx


def max_pool2d_backward(dy: CudaArray, indices: CudaArray, input_shape):
    """dx[n, c].flat[indices] += dy."""
    _, _, h, w = input_shape
    dx = full(tuple(input_shape), 0, _acc_dtype(dy.dtype))
    total = dy.numel()
    if total:
        _scatter_plane_kernel[grid(total)](contiguous(dy), contiguous(indices), dx, total, h * w,
                                           dy.shape[2] * dy.shape[3], ACC=_tl_acc(dy.dtype), BLOCK=BLOCK)
    return dx if dx.dtype == dy.dtype else cast(dx, dy.dtype)


def avg_pool2d_forward(x: CudaArray, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    oh = pool_out_size(h, kernel_size[0], stride[0], padding[0], 1, ceil_mode)
    ow = pool_out_size(w, kernel_size[1], stride[1], padding[1], 1, ceil_mode)
    y = CudaArray.empty((n, c, oh, ow), x.dtype)
    total = y.numel()
    if total:
        _avg_pool_kernel[grid(total, SMALL)](contiguous(x), y, total, h, w, oh, ow, *stride, *padding,
                                              float(divisor_override or 0), KH=kernel_size[0], KW=kernel_size[1],
                                              INCLUDE_PAD=bool(count_include_pad), ACC=_tl_acc(x.dtype), BLOCK=SMALL)
    return y


def avg_pool2d_backward(dy: CudaArray, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    _, _, h, w = input_shape
    dx = CudaArray.empty(tuple(input_shape), dy.dtype)
    total = dx.numel()
    if total:
        _avg_pool_backward_kernel[grid(total, SMALL)](contiguous(dy), dx, total, h, w, dy.shape[2], dy.shape[3],
                                                       *stride, *padding, float(divisor_override or 0),
                                                       KH=kernel_size[0], KW=kernel_size[1],
                                                       INCLUDE_PAD=bool(count_include_pad), ACC=_tl_acc(dy.dtype), BLOCK=SMALL)
    return dx


def _max_window(size: int, out: int) -> int:
    return max(-(-((i + 1) * size) // out) - (i * size) // out for i in range(out)) if out else 1


def adaptive_avg_pool2d_forward(x: CudaArray, output_size):
    n, c, h, w = x.shape
    oh, ow = output_size
    y = CudaArray.empty((n, c, oh, ow), x.dtype)
    total = y.numel()
    if total:
        _adaptive_kernel[grid(total, SMALL)](contiguous(x), y, total, h, w, oh, ow, MAXH=_max_window(h, oh),
                                              MAXW=_max_window(w, ow), BACKWARD=False, ACC=_tl_acc(x.dtype), BLOCK=SMALL)
    return y


def adaptive_avg_pool2d_backward(dy: CudaArray, input_shape):
    _, _, h, w = input_shape
    oh, ow = dy.shape[2], dy.shape[3]
    dx = full(tuple(input_shape), 0, _acc_dtype(dy.dtype))
    total = dy.numel()
    if total:
        _adaptive_kernel[grid(total, SMALL)](contiguous(dy), dx, total, h, w, oh, ow, MAXH=_max_window(h, oh),
                                              MAXW=_max_window(w, ow), BACKWARD=True, ACC=_tl_acc(dy.dtype), BLOCK=SMALL)
    return dx if dx.dtype == dy.dtype else cast(dx, dy.dtype)


def _taps(size: int, out: int, mode: str, align_corners: bool, scale, dtype):
    i0, i1, lam = interp_taps(size, out, mode, align_corners, scale, _acc_dtype(dtype).type)
    return from_host(i0.astype(np.int64)), from_host(i1.astype(np.int64)), from_host(np.asarray(lam, np.float32))


def upsample2d_forward(x: CudaArray, output_size, mode, align_corners, scales):
    """y = four weighted taps of x per output (nearest: one tap, weight 1)."""
    n, c, h, w = x.shape
    oh, ow = output_size
    y = CudaArray.empty((n, c, oh, ow), x.dtype)
    total = y.numel()
    if total:
        _upsample_kernel[grid(total)](contiguous(x), y, total, h, w, oh, ow,
                                      *_taps(h, oh, mode, align_corners, scales[0], x.dtype),
                                      *_taps(w, ow, mode, align_corners, scales[1], x.dtype), BACKWARD=False,
                                      ACC=_tl_acc(x.dtype), BLOCK=BLOCK)
    return y


def upsample2d_backward(dy: CudaArray, input_shape, mode, align_corners, scales):
    """dx = the adjoint: each dy spread over its taps (atomic adds in float32)."""
    _, _, h, w = input_shape
    oh, ow = dy.shape[2], dy.shape[3]
    dx = full(tuple(input_shape), 0, _acc_dtype(dy.dtype))
    total = dy.numel()
    if total:
        _upsample_kernel[grid(total)](contiguous(dy), dx, total, h, w, oh, ow,
                                      *_taps(h, oh, mode, align_corners, scales[0], dy.dtype),
                                      *_taps(w, ow, mode, align_corners, scales[1], dy.dtype), BACKWARD=True,
                                      ACC=_tl_acc(dy.dtype), BLOCK=BLOCK)
    return dx if dx.dtype == dy.dtype else cast(dx, dy.dtype)
