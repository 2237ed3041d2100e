"""Triton kernels: searchsorted, bincount, histc for the cuda device.

    _searchsorted_kernel  one lane per value: a binary search of ITERS = bit_length(n) steps over its
                          row of seq (a shared row when seq has one), with PyTorch's comparisons
                          (left: past while !(s >= v); right: !(s > v)), so a NaN value lands at n;
                          16-bit floats compare as float32
    _bincount_kernel      atomic adds of 1 (int32 counts) or of the weight (float32, or float64 for
                          float64 and integer weights) at each id; ids outside [0, length) are
                          masked (the op checks them on the host first)
    _histc_kernel         bin = int((v - low) * bins / (high - low)) in x's dtype with a correctly
                          rounded division (div_rn, as the cpu kernels divide); low and high arrive
                          as a 2-element array of x's dtype (a Python float argument would be
                          float32); int32 counts by atomic adds, cast to x's dtype
Float atomics make weighted bincount's sums order-dependent on a GPU (within rounding); counts are
exact. Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_search.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray, from_host
from ._view import view
from .creation import cast, contiguous, full

__all__ = ["bincount", "histc", "searchsorted"]

BLOCK = 1024


@triton.jit
def _searchsorted_kernel(seq, values, out, total, m, n, seq_row_stride, ITERS, RIGHT: tl.constexpr,
                         UPCAST: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    base = (i // m) * seq_row_stride
    v = tl.load(values + i, mask=mask, other=0)
    if UPCAST:
        v = v.to(tl.float32)
    lo = tl.zeros([BLOCK], tl.int64)
    hi = tl.zeros([BLOCK], tl.int64) + n
    for _ in range(ITERS):
        active = lo < hi
        mid = (lo + hi) // 2
        s = tl.load(seq + base + mid, mask=mask & active, other=0)
        if UPCAST:
            s = s.to(tl.float32)
        if RIGHT:
            stop = (s > v).to(tl.int32)
        else:
            stop = (s >= v).to(tl.int32)
        lo = tl.where(active & (stop == 0), mid + 1, lo)
        hi = tl.where(active & (stop != 0), mid, hi)
    tl.store(out + i, lo, mask=mask)


@triton.jit
def _bincount_kernel(x, w, out, n, length, WEIGHTED: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    ids = tl.load(x + i, mask=mask, other=0).to(tl.int64)
    mask = mask & (ids >= 0) & (ids < length)
    if WEIGHTED:
        tl.atomic_add(out + ids, tl.load(w + i, mask=mask, other=0).to(out.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(out + ids, tl.full([BLOCK], 1, tl.int32), mask=mask)


@triton.jit
def _histc_kernel(x, lohi, out, n, bins, IS_F32: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    v = tl.load(x + i, mask=mask, other=0)
    lo = tl.load(lohi)
    hi = tl.load(lohi + 1)
    inside = mask & (v >= lo) & (v <= hi)  # NaN fails both
    v = tl.where(inside, v, lo)  # no NaN reaches the int cast
    scale = bins.to(v.dtype)
    if IS_F32:  # fp32 `/` is approximate on the GPU; float64's is IEEE already
        b = tl.div_rn((v - lo) * scale, hi - lo).to(tl.int64)
    else:
        b = ((v - lo) * scale / (hi - lo)).to(tl.int64)
    b = tl.minimum(tl.maximum(b, 0), bins - 1)
    tl.atomic_add(out + b, tl.full([BLOCK], 1, tl.int32), mask=inside)


def searchsorted(seq: CudaArray, values: CudaArray, right) -> CudaArray:
    """int64 insertion points of values (R, m) into the rows of seq (R or 1, n)."""
    seq, values = contiguous(seq), contiguous(values)
    rows, m = values.shape
    n = seq.shape[1]
    out = CudaArray.empty((rows, m), np.int64)
    total = rows * m
    if total:
        upcast = np.dtype(values.dtype).itemsize == 2 and np.dtype(values.dtype).kind != "i"
        _searchsorted_kernel[(triton.cdiv(total, BLOCK),)](
            seq, values, out, total, m, n, 0 if seq.shape[0] == 1 else n, int(n).bit_length(),
            RIGHT=bool(right), UPCAST=upcast, BLOCK=BLOCK)
    return out


def bincount(x: CudaArray, weights, length) -> CudaArray:
    """int64 counts, or weight sums (weights' float dtype; float64 for integer weights)."""
    x = contiguous(x)
    n = x.shape[0]
    if weights is None:
        out = full((length,), 0, np.int32)
        if n and length:
            _bincount_kernel[(triton.cdiv(n, BLOCK),)](x, x, out, n, length, WEIGHTED=False, BLOCK=BLOCK)
        return cast(out, np.int64)
    wdt = np.dtype(weights.dtype)
    final = wdt if wdt.kind == "f" or wdt.name == "bfloat16" else np.dtype(np.float64)
    acc = np.float64 if final == np.float64 else np.float32
    out = full((length,), 0, acc)
    if n and length:
        _bincount_kernel[(triton.cdiv(n, BLOCK),)](x, contiguous(weights), out, n, length, WEIGHTED=True,
                                                   BLOCK=BLOCK)
    return out if np.dtype(acc) == final else cast(out, final)


def histc(x: CudaArray, bins, low, high) -> CudaArray:
    """Histogram of x over [low, high] in `bins` bins, in x's dtype."""
    flat = view(contiguous(x), (x.numel(),))
    out = full((bins,), 0, np.int32)
    n = flat.shape[0]
    if n:
        lohi = from_host(np.array([low, high], dtype=x.dtype))
        is_f32 = np.dtype(x.dtype) == np.float32
        _histc_kernel[(triton.cdiv(n, BLOCK),)](flat, lohi, out, n, bins, IS_F32=is_f32, BLOCK=BLOCK)
    return cast(out, x.dtype)
