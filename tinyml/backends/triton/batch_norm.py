"""Triton kernels: batch_norm forward and backward over x (N, C, *) on the cuda device, seen as
(N, C, L) with L the product of the trailing dims.

    forward:   mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M   (M = N * L; when not given)
               y = (x - mean_c) invstd_c w_c + b_c,  invstd_c = 1 / sqrt(var_c + eps)
               running_mean <- (1 - m) running_mean + m mean_c, running_var with var_c M / (M - 1)
               (in place, when given, in the same program; not for an empty batch)
    backward:  db_c = sum dy,  dw_c = sum dy xhat,  xhat = (x - mean_c) invstd_c
               training: dx = w_c invstd_c (dy - db_c / M - xhat dw_c / M);  eval: dx = dy w_c invstd_c

One program per channel walks the channel's M values (index i -> n = i // L, l = i % L) in blocks:
two passes for the statistics (a sum about the channel's first value, then squared deviations
about the mean: exact, no E[x^2] - E[x]^2 cancellation; a constant channel gets zero variance),
then the normalising pass; the backward's two sums and its dx pass likewise. Each channel's sums
belong to one program: no atomics, deterministic. Statistics and sums are float32 (float64 for
float64 inputs); 16-bit inputs are loaded and computed in float32.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_batch_norm.py
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .creation import contiguous, full
from .reduce import accumulator

__all__ = ["batch_norm_backward", "batch_norm_forward"]

BLOCK = 1024


@triton.jit
def _offsets(c, i, C, L):
    return ((i // L) * C + c) * L + i % L


@triton.jit
def _forward_kernel(x, w, b, mean_in, var_in, y, mean_out, var_out, running_mean, running_var, C, L, M, eps,
                    momentum, HAS_W: tl.constexpr, HAS_B: tl.constexpr, HAS_STATS: tl.constexpr,
                    UPDATE_MEAN: tl.constexpr, UPDATE_VAR: tl.constexpr, ACC: tl.constexpr,
                    BLOCK: tl.constexpr):
    c = tl.program_id(0).to(tl.int64)
    if HAS_STATS:
        mean = tl.load(mean_in + c).to(ACC)
        var = tl.load(var_in + c).to(ACC)
    else:
        k = tl.load(x + c * L).to(ACC)
        k = tl.where(tl.abs(k) < float("inf"), k, 0.0)
        acc = tl.zeros((BLOCK,), ACC)
        for start in range(0, M, BLOCK):
            i = start + tl.arange(0, BLOCK).to(tl.int64)
            v = tl.load(x + _offsets(c, i, C, L), mask=i < M, other=0.0).to(ACC)
            acc += tl.where(i < M, v - k, 0.0)
        mean = k + tl.sum(acc, 0) / M
        acc2 = tl.zeros((BLOCK,), ACC)
        for start in range(0, M, BLOCK):
            i = start + tl.arange(0, BLOCK).to(tl.int64)
            v = tl.load(x + _offsets(c, i, C, L), mask=i < M, other=0.0).to(ACC)
            d = tl.where(i < M, v - mean, 0.0)
            acc2 += d * d
        var = tl.sum(acc2, 0) / M
    scale = 1.0 / tl.sqrt(var + eps)
    if HAS_W:
        scale = scale * tl.load(w + c).to(ACC)
    shift = 0.0
    if HAS_B:
        shift = tl.load(b + c).to(ACC)
    for start in range(0, M, BLOCK):
        i = start + tl.arange(0, BLOCK).to(tl.int64)
        off = _offsets(c, i, C, L)
        v = tl.load(x + off, mask=i < M, other=0.0).to(ACC)
        tl.store(y + off, ((v - mean) * scale + shift).to(y.dtype.element_ty), mask=i < M)
    tl.store(mean_out + c, mean.to(mean_out.dtype.element_ty))
    tl.store(var_out + c, var.to(var_out.dtype.element_ty))
    if UPDATE_MEAN:
        rm = (1.0 - momentum) * tl.load(running_mean + c).to(ACC) + momentum * mean
        tl.store(running_mean + c, rm.to(running_mean.dtype.element_ty))
    if UPDATE_VAR:
        rv = (1.0 - momentum) * tl.load(running_var + c).to(ACC) + momentum * (var * M / tl.maximum(M - 1, 1))
        tl.store(running_var + c, rv.to(running_var.dtype.element_ty))


@triton.jit
def _backward_kernel(dy, x, w, mean_in, var_in, dx, dw, db, C, L, M, eps, HAS_W: tl.constexpr,
                     TRAINING: tl.constexpr, NEED_DX: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    c = tl.program_id(0).to(tl.int64)
    mean = tl.load(mean_in + c).to(ACC)
    invstd = 1.0 / tl.sqrt(tl.load(var_in + c).to(ACC) + eps)
    scale = invstd
    if HAS_W:
        scale = scale * tl.load(w + c).to(ACC)
    s_dy = tl.zeros((BLOCK,), ACC)
    s_dyx = tl.zeros((BLOCK,), ACC)
    for start in range(0, M, BLOCK):
        i = start + tl.arange(0, BLOCK).to(tl.int64)
        off = _offsets(c, i, C, L)
        g = tl.load(dy + off, mask=i < M, other=0.0).to(ACC)
        v = tl.load(x + off, mask=i < M, other=0.0).to(ACC)
        s_dy += g
        s_dyx += tl.where(i < M, g * (v - mean), 0.0)
    sum_dy = tl.sum(s_dy, 0)
    sum_dyx = tl.sum(s_dyx, 0)
    tl.store(dw + c, (sum_dyx * invstd).to(dw.dtype.element_ty))
    tl.store(db + c, sum_dy.to(db.dtype.element_ty))
    if NEED_DX:
        k = 0.0
        d = 0.0
        if TRAINING:
            k = -scale * invstd * invstd * sum_dyx / M
            d = -scale * sum_dy / M
        for start in range(0, M, BLOCK):
            i = start + tl.arange(0, BLOCK).to(tl.int64)
            off = _offsets(c, i, C, L)
            g = tl.load(dy + off, mask=i < M, other=0.0).to(ACC)
            v = tl.load(x + off, mask=i < M, other=0.0).to(ACC)
            tl.store(dx + off, (scale * g + k * (v - mean) + d).to(dx.dtype.element_ty), mask=i < M)


def _stats_dtype(x: CudaArray) -> str:
    return "float64" if x.dtype.name == "float64" else "float32"


def _block(m: int) -> int:
    return min(triton.next_power_of_2(max(m, 1)), BLOCK)


def _split(shape):
    """(N, C, L) of an (N, C, *) shape."""
    length = 1
    for s in shape[2:]:
        length *= s
    return shape[0], shape[1], length


def batch_norm_forward(x, weight, bias, mean, var, eps, running_mean=None, running_var=None, momentum=0.0):
    """(y, mean, var); running_mean / running_var (contiguous) are updated in place in training."""
    x = contiguous(x)
    n, c, length = _split(x.shape)
    m = n * length
    sd = _stats_dtype(x)
    y = CudaArray.empty(x.shape, x.dtype)
    if c and not m and mean is None:  # empty channels: NaN statistics, as the reference
        return y, full((c,), float("nan"), sd), full((c,), float("nan"), sd)
    mean_out, var_out = CudaArray.empty((c,), sd), CudaArray.empty((c,), sd)
    if c:
        stats = (contiguous(mean), contiguous(var)) if mean is not None else (x, x)  # (placeholders)
        update = mean is None and m > 0  # an empty batch leaves the running statistics
        _forward_kernel[(c,)](x, weight if weight is not None else x, bias if bias is not None else x, *stats,
                              y, mean_out, var_out, running_mean if running_mean is not None else x,
                              running_var if running_var is not None else x, c, length, m, float(eps),
                              float(momentum), HAS_W=weight is not None, HAS_B=bias is not None,
                              HAS_STATS=mean is not None, UPDATE_MEAN=update and running_mean is not None,
                              UPDATE_VAR=update and running_var is not None, ACC=accumulator(mean_out.dtype),
                              BLOCK=_block(m))
    return y, mean_out, var_out


def batch_norm_backward(dy, x, weight, mean, var, eps, training, needs=(True, True, True)):
    dy, x = contiguous(dy), contiguous(x)
    n, c, length = _split(x.shape)
    pdt = weight.dtype if weight is not None else x.dtype
    dx = CudaArray.empty(x.shape, x.dtype) if needs[0] else None
    dw, db = CudaArray.empty((c,), pdt), CudaArray.empty((c,), pdt)
    if c:
        _backward_kernel[(c,)](dy, x, weight if weight is not None else x, contiguous(mean), contiguous(var),
                               dx if dx is not None else x, dw, db, c, length, n * length, float(eps),
                               HAS_W=weight is not None, TRAINING=bool(training), NEED_DX=bool(needs[0]),
                               ACC=accumulator(var.dtype), BLOCK=_block(n * length))
    return dx, dw if needs[1] else None, db if needs[2] else None
