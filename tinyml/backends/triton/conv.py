"""Triton kernels: 2-d convolution as implicit GEMM for the cuda device.

x (N, C, H, W), w (O, C/G, kh, kw), y (N, O, oh, ow); pads (top, bottom, left, right). With
m = (n, i, j) an output position and k = (c, p, q) a tap, the im2col matrix is never built:

    cols[m, k] = x[n, g C/G + c, i sh - pt + p dh, j sw - pl + q dw]   (0 in the padding)
    forward:  y[m, o]  = sum_k cols[m, k] w[o, k] + b[o]         tiles (BM x BN), K looped
    dw:       dw[o, k] = sum_m dy[m, o] cols[m, k]               tiles (BM x BN), M looped
    dx:       dcols[m, k] = sum_o dy[m, o] w[o, k], scattered into dx with atomic adds (the
              adjoint of im2col; overlapping windows add)
    db:       the sum kernel over (N, oh, ow)
Each tile computes with tl.dot: float32 in IEEE precision (not tf32, so results match the
reference to float32 rounding), 16-bit floats converted to float32 and fed as tf32 (exact for them)
with float32 accumulation; float64 (which tl.dot
does not take) as a broadcast multiply and sum, in float64.
One program grid axis per group.
Tests: python -m pytest tests/ops/test_conv.py tests/ops/test_pool.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ..reference.conv import conv_out_size
from .creation import cast, contiguous, full
from .reduce import sum as _sum

__all__ = ["conv2d_backward", "conv2d_forward"]

BM, BN, BK = 32, 32, 32


@triton.jit
def _mma(a, b, ACC: tl.constexpr, PREC: tl.constexpr):
    """a @ b with ACC accumulation: tl.dot (IEEE float32 for float32 inputs), or for float64
    (which tl.dot does not take) a broadcast multiply and sum."""
    if PREC == "f64":
        r = tl.sum(a.to(ACC)[:, :, None] * b.to(ACC)[None, :, :], axis=1)
    elif PREC == "ieee":
        r = tl.dot(a, b, input_precision="ieee", out_dtype=ACC)
    else:  # 16-bit floats are exact in tf32: float32 tensor-core products, float32 accumulation
        r = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="tf32", out_dtype=ACC)
    return r


@triton.jit
def _cols(x, m, k, M, K, C, H, W, OH, OW, CG, g, sh, sw, pt, pl, dh, dw, KH: tl.constexpr, KW: tl.constexpr):
    """(offsets, mask) of cols[m, k] in x for a tile of m (rows) and k (columns)."""
    n = m // (OH * OW)
    i = (m // OW) % OH
    j = m % OW
    c = k // (KH * KW)
    p = (k // KW) % KH
    q = k % KW
    r = i[:, None] * sh - pt + p[None, :] * dh
    s = j[:, None] * sw - pl + q[None, :] * dw
    ok = (m[:, None] < M) & (k[None, :] < K) & (r >= 0) & (r < H) & (s >= 0) & (s < W)
    off = ((n[:, None] * C + g * CG + c[None, :]) * H + r) * W + s
    return off, ok


@triton.jit
def _conv_forward_kernel(x, w, b, y, M, K, C, H, W, OH, OW, O, OG, CG, sh, sw, pt, pl, dh, dw, KH: tl.constexpr,
                         KW: tl.constexpr, HAS_B: tl.constexpr, ACC: tl.constexpr, PREC: tl.constexpr,
                         BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    g = tl.program_id(2)
    m = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    o = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), ACC)
    for k0 in range(0, K, BK):
        k = k0 + tl.arange(0, BK)
        off, ok = _cols(x, m, k, M, K, C, H, W, OH, OW, CG, g, sh, sw, pt, pl, dh, dw, KH, KW)
        a = tl.load(x + off, mask=ok, other=0)
        wt = tl.load(w + (g * OG + o[None, :]) * K + k[:, None], mask=(k[:, None] < K) & (o[None, :] < OG), other=0)
        acc += _mma(a, wt, ACC, PREC)
    if HAS_B:
        acc += tl.load(b + g * OG + o, mask=o < OG, other=0).to(ACC)[None, :]
    n = m // (OH * OW)
    ij = m % (OH * OW)
    dst = (n[:, None] * O + g * OG + o[None, :]) * (OH * OW) + ij[:, None]
    tl.store(y + dst, acc.to(y.dtype.element_ty), mask=(m[:, None] < M) & (o[None, :] < OG))


@triton.jit
def _conv_dw_kernel(x, dy, dwt, M, K, C, H, W, OH, OW, O, OG, CG, sh, sw, pt, pl, dh, dw, KH: tl.constexpr,
                    KW: tl.constexpr, ACC: tl.constexpr, PREC: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                    BK: tl.constexpr):
    g = tl.program_id(2)
    o = tl.program_id(0) * BM + tl.arange(0, BM)
    k = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), ACC)
    for m0 in range(0, M, BK):
        m = m0 + tl.arange(0, BK)
        n = m // (OH * OW)
        ij = m % (OH * OW)
        src = (n[None, :] * O + g * OG + o[:, None]) * (OH * OW) + ij[None, :]
        a = tl.load(dy + src, mask=(o[:, None] < OG) & (m[None, :] < M), other=0)
        off, ok = _cols(x, m, k, M, K, C, H, W, OH, OW, CG, g, sh, sw, pt, pl, dh, dw, KH, KW)
        cols = tl.load(x + off, mask=ok, other=0)
        acc += _mma(a, cols, ACC, PREC)
    tl.store(dwt + (g * OG + o[:, None]) * K + k[None, :], acc.to(dwt.dtype.element_ty),
             mask=(o[:, None] < OG) & (k[None, :] < K))


@triton.jit
def _conv_dx_kernel(dy, w, dx, M, K, C, H, W, OH, OW, O, OG, CG, sh, sw, pt, pl, dh, dw, KH: tl.constexpr,
                    KW: tl.constexpr, ACC: tl.constexpr, PREC: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                    BK: tl.constexpr):
    g = tl.program_id(2)
    m = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
    k = tl.program_id(1) * BN + tl.arange(0, BN)
    n = m // (OH * OW)
    ij = m % (OH * OW)
    acc = tl.zeros((BM, BN), ACC)
    for o0 in range(0, OG, BK):
        o = o0 + tl.arange(0, BK)
        a = tl.load(dy + (n[:, None] * O + g * OG + o[None, :]) * (OH * OW) + ij[:, None],
                    mask=(m[:, None] < M) & (o[None, :] < OG), other=0)
        wt = tl.load(w + (g * OG + o[:, None]) * K + k[None, :], mask=(o[:, None] < OG) & (k[None, :] < K), other=0)
        acc += _mma(a, wt, ACC, PREC)
    off, ok = _cols(dx, m, k, M, K, C, H, W, OH, OW, CG, g, sh, sw, pt, pl, dh, dw, KH, KW)
    tl.atomic_add(dx + off, acc.to(dx.dtype.element_ty), mask=ok)


def _meta(dtype):
    if np.dtype(dtype) == np.float64:
        return {"ACC": tl.float64, "PREC": "f64"}
    return {"ACC": tl.float32, "PREC": "ieee" if np.dtype(dtype) == np.float32 else "native"}


def _geometry(x: CudaArray, w: CudaArray, stride, pads, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = conv_out_size(h, pads[0], pads[1], kh, stride[0], dilation[0])
    ow = conv_out_size(wd, pads[2], pads[3], kw, stride[1], dilation[1])
    geo = (n * oh * ow, cg * kh * kw, c, h, wd, oh, ow, o, o // groups, cg, stride[0], stride[1], pads[0], pads[2],
           dilation[0], dilation[1])
    return geo, (kh, kw), (n, o, oh, ow)


def conv2d_forward(x: CudaArray, w: CudaArray, b, stride, pads, dilation, groups) -> CudaArray:
    """y = conv(x, w) + b."""
    geo, (kh, kw), yshape = _geometry(x, w, stride, pads, dilation, groups)
    y = CudaArray.empty(yshape, x.dtype)
    M, K, OG = geo[0], geo[1], geo[8]
    if y.numel():
        if K == 0:
            return full(yshape, 0, x.dtype) if b is None else cast(_bias_only(b, yshape), x.dtype)
        bias = contiguous(b) if b is not None else w
        _conv_forward_kernel[(triton.cdiv(M, BM), triton.cdiv(OG, BN), groups)](
            contiguous(x), contiguous(w), bias, y, *geo, KH=kh, KW=kw, HAS_B=b is not None, **_meta(x.dtype),
            BM=BM, BN=BN, BK=BK)
    return y


def _bias_only(b: CudaArray, shape) -> CudaArray:
    from ._view import view
    from .creation import copy_

    out = CudaArray.empty(shape, b.dtype)
    return copy_(out, view(contiguous(b), (1, shape[1], 1, 1)))


def conv2d_backward(x: CudaArray, w: CudaArray, dy: CudaArray, stride, pads, dilation, groups,
                    needs=(True, True, True)):
    """(dx, dw, db); an entry is None where needs says it is not wanted."""
    geo, (kh, kw), _ = _geometry(x, w, stride, pads, dilation, groups)
    M, K, OG = geo[0], geo[1], geo[8]
    dy = contiguous(dy)
    dx = dw = db = None
    acc_np = np.float64 if x.dtype == np.float64 else np.float32
    if needs[1]:
        dw = CudaArray.empty(w.shape, w.dtype)
        if w.numel():
            if M == 0:
                dw = full(w.shape, 0, w.dtype)
            else:
                _conv_dw_kernel[(triton.cdiv(OG, BM), triton.cdiv(K, BN), groups)](
                    contiguous(x), dy, dw, *geo, KH=kh, KW=kw, **_meta(x.dtype), BM=BM, BN=BN, BK=BK)
    if needs[2]:
        db = _sum(dy, (0, 2, 3), False, dy.dtype)
    if needs[0]:
        dx = full(x.shape, 0, acc_np)
        if M and K and OG:
            _conv_dx_kernel[(triton.cdiv(M, BM), triton.cdiv(K, BN), groups)](
                dy, contiguous(w), dx, *geo, KH=kh, KW=kw, **_meta(x.dtype), BM=BM, BN=BN, BK=BK)
        if dx.dtype != x.dtype:
            dx = cast(dx, x.dtype)
    return dx, dw, db
