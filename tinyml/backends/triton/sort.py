"""Triton kernels: sort, topk, kthvalue, median along one dim, for the cuda device.

The sorted dim is moved last and made contiguous: rows (R, n). Each row is padded to
P = next power of two and sorted by a bitonic network over (key, index) pairs held in global
memory (int64 each), one launch per compare-exchange step:

    _keys_kernel          key = an int64 whose order is the value order (backends/reference/sort.py's
                          total order): floats by their bits (negatives' low bits inverted; every NaN
                          the largest key; -0.0 the key of 0.0; 16-bit floats through float32), ints
                          as they are; descending inverts the key (~k) and keeps the index order;
                          padding gets the largest key and an index >= n, so it sorts last
    _bitonic_step_kernel  for k = 2, 4, .., P and j = k/2, .., 1: element c pairs with c ^ j and the
                          pair is put in ascending order where c & k == 0, descending elsewhere;
                          (key, index) compared lexicographically: a total order, so the result
                          is the stable order
    _pick_kernel          values = x[row, idx[row, first + c]] for c < m: the whole row (sort), the
                          first k (topk), position k - 1 (kthvalue), or the lower median, whose
                          position the kernel finds by counting the row's NaNs (median / nanmedian)

log2(P) (log2(P) + 1) / 2 step launches, O(n log^2 n) work per row; rows of any length fit (the
network lives in global memory, not in one program's registers), at the price of one launch per
step for short rows too.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_sort.py -k cuda
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._view import permute, view
from .creation import contiguous

__all__ = ["kthvalue", "median", "sort", "topk"]

BLOCK = 1024


@triton.jit
def _keys_kernel(x, keys, idx, n, P, total, KIND: tl.constexpr, DESCENDING: tl.constexpr,
                 BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < total
    row = i // P
    col = i % P
    valid = m & (col < n)
    v = tl.load(x + row * n + col, mask=valid, other=0)
    if KIND == 0:  # integers and bool
        k = v.to(tl.int64)
    elif KIND == 1:  # float32, float16, bfloat16 (compared as float32)
        f = v.to(tl.float32)
        f = tl.where(f == 0.0, 0.0, f)  # -0.0 -> 0.0
        b = f.to(tl.int32, bitcast=True)
        b = tl.where(f != f, 0x7FC00000, b)  # every NaN -> the positive quiet NaN, above +inf
        k = tl.where(b < 0, b ^ 0x7FFFFFFF, b).to(tl.int64)
    else:  # float64
        f = tl.where(v == 0.0, 0.0, v)
        b = f.to(tl.int64, bitcast=True)
        b = tl.where(f != f, 0x7FF8000000000000, b)
        k = tl.where(b < 0, b ^ 0x7FFFFFFFFFFFFFFF, b)
    if DESCENDING:
        k = ~k
    k = tl.where(valid, k, 0x7FFFFFFFFFFFFFFF)
    tl.store(keys + i, k, mask=m)
    tl.store(idx + i, col, mask=m)


@triton.jit
def _bitonic_step_kernel(keys, idx, total, P, j, k, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    col = i % P
    other_col = col ^ j
    active = (i < total) & (other_col > col)  # each pair once, from its lower element
    partner = i - col + other_col
    ka = tl.load(keys + i, mask=active, other=0)
    kb = tl.load(keys + partner, mask=active, other=0)
    ia = tl.load(idx + i, mask=active, other=0)
    ib = tl.load(idx + partner, mask=active, other=0)
    ascending = (col & k) == 0
    a_after_b = (ka > kb) | ((ka == kb) & (ia > ib))
    swap = active & (a_after_b == ascending)
    tl.store(keys + i, kb, mask=swap)
    tl.store(keys + partner, ka, mask=swap)
    tl.store(idx + i, ib, mask=swap)
    tl.store(idx + partner, ia, mask=swap)


@triton.jit
def _pick_kernel(x, idx, values_out, idx_out, n, P, m, first, MODE: tl.constexpr, IS_FLOAT: tl.constexpr,
                 BLOCK: tl.constexpr):
    """MODE 0: entries first .. first + m - 1; 1: median; 2: nanmedian (m = 1)."""
    row = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = c < m
    start = first + tl.zeros([BLOCK], tl.int64)
    if MODE != 0:
        nans = tl.zeros([BLOCK], tl.int64)
        if IS_FLOAT:
            for s in range(0, n, BLOCK):
                o = s + tl.arange(0, BLOCK)
                v = tl.load(x + row * n + o, mask=o < n, other=0).to(tl.float32)
                nans += (v != v).to(tl.int64)
        nan_count = tl.sum(nans, axis=0)
        valid = n - nan_count  # NaNs order last, by index: the first NaN is at `valid`
        pos = tl.maximum((valid - 1) // 2, 0)
        if MODE == 1:
            pos = tl.where(nan_count > 0, valid, pos)
        start = pos + tl.zeros([BLOCK], tl.int64)
    j = tl.load(idx + row * P + start + c, mask=mask, other=0)
    tl.store(idx_out + row * m + c, j, mask=mask)
    tl.store(values_out + row * m + c, tl.load(x + row * n + j, mask=mask), mask=mask)


def _kind(dtype) -> int:
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return 2
    return 0 if dtype.kind in "iub" else 1


def _rows(x: CudaArray, dim: int):
    """(rows (R, n) contiguous, the shape with dim moved last, the permutation that moved it)."""
    order = [d for d in range(x.ndim) if d != dim] + [dim]
    moved = contiguous(permute(x, order) if order != list(range(x.ndim)) else x)
    n = moved.shape[-1]
    return view(moved, (math.prod(moved.shape[:-1]), n)), moved.shape, order


def _sorted_index(rows: CudaArray, descending: bool) -> tuple[CudaArray, int]:
    """(idx (R, P), P): each row's indices in the total order, padding entries last."""
    R, n = rows.shape
    P = 1 << max(0, (n - 1).bit_length())
    keys = CudaArray.empty((R, P), np.int64)
    idx = CudaArray.empty((R, P), np.int64)
    total = R * P
    grid = (triton.cdiv(total, BLOCK),)
    _keys_kernel[grid](rows, keys, idx, n, P, total, KIND=_kind(rows.dtype), DESCENDING=bool(descending),
                       BLOCK=BLOCK)
    k = 2
    while k <= P:
        j = k // 2
        while j >= 1:
            _bitonic_step_kernel[grid](keys, idx, total, P, j, k, BLOCK=BLOCK)
            j //= 2
        k *= 2
    return idx, P


def _select(x: CudaArray, dim: int, descending: bool, m: int, first: int, mode: int, reduced: bool):
    """Sort x's rows along dim, then keep m entries from `first` (or the median: mode 1, 2)."""
    rows, moved_shape, order = _rows(x, dim)
    R, n = rows.shape
    values = CudaArray.empty((R, m), x.dtype)
    indices = CudaArray.empty((R, m), np.int64)
    if R and m:
        idx, P = _sorted_index(rows, descending)
        _pick_kernel[(R, triton.cdiv(m, BLOCK))](rows, idx, values, indices, n, P, m, first, MODE=mode,
                                                 IS_FLOAT=_kind(x.dtype) != 0, BLOCK=BLOCK)
    if reduced:
        shape = moved_shape[:-1]
        return view(values, shape), view(indices, shape)
    shape = moved_shape[:-1] + (m,)
    inverse = [order.index(d) for d in range(len(order))]

    def back(a):
        a = view(a, shape)
        return a if inverse == list(range(len(order))) else contiguous(permute(a, inverse))

    return back(values), back(indices)


def sort(x: CudaArray, dim, descending):
    """(values, indices) of x sorted along dim (stable; NaN largest)."""
    return _select(x, dim, descending, x.shape[dim], 0, 0, False)


def topk(x: CudaArray, k, dim, largest):
    """The first k of the descending (largest) or ascending order along dim."""
    return _select(x, dim, largest, int(k), 0, 0, False)


def kthvalue(x: CudaArray, k, dim):
    """The k-th (1-based) of the ascending order along dim; dim removed."""
    return _select(x, dim, False, 1, int(k) - 1, 0, True)


def median(x: CudaArray, dim, ignore_nan):
    """Lower median along dim (NaN rule of backends/reference/sort.py); dim removed."""
    return _select(x, dim, False, 1, 0, 2 if ignore_nan else 1, True)
