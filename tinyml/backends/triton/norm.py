"""Triton kernels: layer_norm and rms_norm forward/backward over rows (cuda device).

    layer_norm:  y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)   (biased var)
    rms_norm:    y = x * rstd * w,               rstd = 1 / sqrt(mean(x^2) + eps)
    backward:    xhat = (x - mean) * rstd,  wdy = w * dy
                 dx = rstd (wdy - mean(wdy) - xhat mean(wdy xhat))        (rms: no mean(wdy) term)
                 dw = sum_rows dy xhat,  db = sum_rows dy

Forward saves only mean and rstd (float32; float64 for float64 inputs). One program per row for
y and dx, streaming the row in blocks; dw/db come from a second kernel that walks the rows for
a block of columns (no atomics, deterministic). The mean is summed about the row's first element
k (mean = k + sum (x - k) / N), so a constant row has its exact mean and y = b, as in PyTorch; a
float32 row whose variance overflows (|x| >= ~1e19, or NaN/inf, which stay NaN) is recomputed in
float64, so rows up to float32's max stay finite.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_norm.py -k cuda
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .creation import contiguous, full
from .reduce import accumulator

__all__ = ["layer_norm_forward", "layer_norm_backward", "rms_norm_forward", "rms_norm_backward"]


@triton.jit
def _moments(x, base, N, RMS: tl.constexpr, DT: tl.constexpr, BLOCK: tl.constexpr):
    """(mean, mean square about it) of one row in DT; the mean is 0 for rms_norm."""
    if RMS:
        mean = tl.zeros((), DT)
    else:
        k = tl.load(x + base).to(DT)
        k = tl.where(tl.abs(k) < float("inf"), k, 0.0)
        acc = tl.zeros((BLOCK,), DT)
        for start in range(0, N, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            v = tl.load(x + base + offs, mask=offs < N, other=0.0).to(DT)
            acc += tl.where(offs < N, v - k, 0.0)
        mean = k + tl.sum(acc, 0) / N
    acc2 = tl.zeros((BLOCK,), DT)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + base + offs, mask=offs < N, other=0.0).to(DT)
        d = tl.where(offs < N, v - mean, 0.0)
        acc2 += d * d
    return mean, tl.sum(acc2, 0) / N


@triton.jit
def _normalize(x, w, b, y, base, N, mean, rstd, HAS_W: tl.constexpr, HAS_B: tl.constexpr, DT: tl.constexpr,
               BLOCK: tl.constexpr):
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < N
        v = (tl.load(x + base + offs, mask=m, other=0.0).to(DT) - mean) * rstd
        if HAS_W:
            v = v * tl.load(w + offs, mask=m, other=0.0).to(DT)
        if HAS_B:
            v = v + tl.load(b + offs, mask=m, other=0.0).to(DT)
        tl.store(y + base + offs, v.to(y.dtype.element_ty), mask=m)


@triton.jit
def _forward_kernel(x, w, b, y, mean_out, rstd_out, N, eps, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
                    RMS: tl.constexpr, ACC: tl.constexpr, WIDE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * N
    mean, var = _moments(x, base, N, RMS, ACC, BLOCK)
    overflow = False
    if WIDE:  # float32 statistics: a non-finite variance is redone in float64
        overflow = ~(var < float("inf"))
    if overflow:
        mean_w, var_w = _moments(x, base, N, RMS, tl.float64, BLOCK)
        rstd_w = 1.0 / tl.sqrt(var_w + eps)
        _normalize(x, w, b, y, base, N, mean_w, rstd_w, HAS_W, HAS_B, tl.float64, BLOCK)
        mean = mean_w.to(ACC)
        rstd = rstd_w.to(ACC)
    else:
        rstd = 1.0 / tl.sqrt(var + eps)
        _normalize(x, w, b, y, base, N, mean, rstd, HAS_W, HAS_B, ACC, BLOCK)
    if not RMS:
        tl.store(mean_out + row, mean.to(mean_out.dtype.element_ty))
    tl.store(rstd_out + row, rstd.to(rstd_out.dtype.element_ty))


@triton.jit
def _dx_kernel(dy, x, w, mean_in, rstd_in, dx, N, HAS_W: tl.constexpr, RMS: tl.constexpr, ACC: tl.constexpr,
               BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * N
    rstd = tl.load(rstd_in + row).to(ACC)
    if RMS:
        mean = 0.0
    else:
        mean = tl.load(mean_in + row).to(ACC)
    s1 = tl.zeros((BLOCK,), ACC)
    s2 = tl.zeros((BLOCK,), ACC)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < N
        g = tl.load(dy + base + offs, mask=m, other=0.0).to(ACC)
        if HAS_W:
            g = g * tl.load(w + offs, mask=m, other=0.0).to(ACC)
        xhat = (tl.load(x + base + offs, mask=m, other=0.0).to(ACC) - mean) * rstd
        s1 += g
        s2 += tl.where(m, g * xhat, 0.0)
    c1 = tl.sum(s1, 0) / N
    c2 = tl.sum(s2, 0) / N
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < N
        g = tl.load(dy + base + offs, mask=m, other=0.0).to(ACC)
        if HAS_W:
            g = g * tl.load(w + offs, mask=m, other=0.0).to(ACC)
        xhat = (tl.load(x + base + offs, mask=m, other=0.0).to(ACC) - mean) * rstd
        if RMS:
            r = rstd * (g - xhat * c2)
        else:
            r = rstd * (g - c1 - xhat * c2)
        tl.store(dx + base + offs, r.to(dx.dtype.element_ty), mask=m)


@triton.jit
def _dw_kernel(dy, x, mean_in, rstd_in, dw, db, ROWS, N, HAS_B: tl.constexpr, RMS: tl.constexpr,
               ACC: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = cols < N
    acc_w = tl.zeros((BLOCK,), ACC)
    acc_b = tl.zeros((BLOCK,), ACC)
    for r in range(0, ROWS):
        base = tl.cast(r, tl.int64) * N
        g = tl.load(dy + base + cols, mask=m, other=0.0).to(ACC)
        rstd = tl.load(rstd_in + r).to(ACC)
        if RMS:
            xhat = tl.load(x + base + cols, mask=m, other=0.0).to(ACC) * rstd
        else:
            xhat = (tl.load(x + base + cols, mask=m, other=0.0).to(ACC) - tl.load(mean_in + r).to(ACC)) * rstd
        acc_w += g * xhat
        acc_b += g
    tl.store(dw + cols, acc_w.to(dw.dtype.element_ty), mask=m)
    if HAS_B:
        tl.store(db + cols, acc_b.to(db.dtype.element_ty), mask=m)


def _stats_dtype(x: CudaArray):
    return "float64" if x.dtype.name == "float64" else "float32"


def _block(n: int) -> int:
    return min(triton.next_power_of_2(max(n, 1)), 4096)


def _forward(x, weight, bias, eps, rms):
    x = contiguous(x)
    rows, n = x.shape
    y = CudaArray.empty(x.shape, x.dtype)
    if not n:  # statistics of empty rows are NaN (0 / 0), as in the reference; y is empty
        return y, full((rows,), float("nan"), _stats_dtype(x)), full((rows,), float("nan"), _stats_dtype(x))
    mean = CudaArray.empty((rows,), _stats_dtype(x))
    rstd = CudaArray.empty((rows,), _stats_dtype(x))
    if rows:
        w = weight if weight is not None else x  # (a placeholder pointer when there is none)
        b = bias if bias is not None else x
        _forward_kernel[(rows,)](x, w, b, y, mean, rstd, n, float(eps), HAS_W=weight is not None,
                                 HAS_B=bias is not None, RMS=rms, ACC=accumulator(mean.dtype),
                                 WIDE=mean.dtype.name == "float32", BLOCK=_block(n))
    return y, mean, rstd


def _backward(dy, x, weight, mean, rstd, rms, has_bias):
    dy, x = contiguous(dy), contiguous(x)
    rows, n = x.shape
    acc = accumulator(rstd.dtype)
    dx = CudaArray.empty(x.shape, x.dtype)
    if rows and n:
        w = weight if weight is not None else x
        m = mean if mean is not None else rstd  # (a placeholder pointer for rms_norm)
        _dx_kernel[(rows,)](dy, x, w, m, rstd, dx, n, HAS_W=weight is not None, RMS=rms, ACC=acc,
                            BLOCK=_block(n))
    if weight is None:
        return dx, None, None
    dw = CudaArray.empty((n,), weight.dtype)
    db = CudaArray.empty((n,), weight.dtype) if has_bias else None
    block = 128
    _dw_kernel[(triton.cdiv(n, block),)](dy, x, mean if mean is not None else rstd, rstd, dw,
                                         db if db is not None else dw, rows, n, HAS_B=has_bias, RMS=rms,
                                         ACC=acc, BLOCK=block)
    return dx, dw, db


def layer_norm_forward(x, weight, bias, eps):
    return _forward(x, weight, bias, eps, rms=False)


def layer_norm_backward(dy, x, weight, mean, rstd):
    return _backward(dy, x, weight, mean, rstd, rms=False, has_bias=weight is not None)


def rms_norm_forward(x, weight, eps):
    y, _, rstd = _forward(x, weight, None, eps, rms=True)
    return y, rstd


def rms_norm_backward(dy, x, weight, rstd):
    dx, dw, _ = _backward(dy, x, weight, None, rstd, rms=True, has_bias=False)
    return dx, dw
