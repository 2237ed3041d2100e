"""Triton kernels: running sums and products along one dim, for the cuda device.

    cumsum(x, dim, dtype, reverse)  y_i = sum_{j <= i} x_j (sum_{j >= i} with reverse)
    cumprod(x, dim, dtype)          y_i = prod_{j <= i} x_j
    cumprod_backward(x, y, g, dim)  dx_k = sum_{j >= k} g_j prod_{i <= j, i != k} x_i, exact with zeros:
        z = the first zero of the row;  k < z: (reverse cumsum of g y)_k / x_k
        k = z: prod_{i < z} x_i * sum_{j >= z} g_j prod_{z < i <= j} x_i;   k > z: 0
The scanned dim is moved last (row layout, _rows.py); one program scans a row in chunks with
tl.cumsum / tl.cumprod, carrying the running total from chunk to chunk (reverse scans load the
chunk backwards). 16-bit floats accumulate in float32.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_cumulative.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._rows import acc_type, block_for, float_acc, from_rows, load_up, rows_of
from .creation import cast

__all__ = ["cumprod", "cumprod_backward", "cumsum"]


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _scan_rows(x, out, R, PROD: tl.constexpr, REVERSE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * R
    carry = tl.full((), 1 if PROD else 0, ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < R
        if REVERSE:
            pos = R - 1 - offs
        else:
            pos = offs
        v = load_up(x + base + pos, m, 1 if PROD else 0).to(ACC)
        if PROD:
            s = tl.cumprod(v, 0) * carry
            carry = carry * tl.reduce(v, 0, _mul)
        else:
            s = tl.cumsum(v, 0) + carry
            carry = carry + tl.sum(v, 0)
        tl.store(out + base + pos, s.to(out.dtype.element_ty), mask=m)


@triton.jit
def _cumprod_backward_rows(x, y, g, out, R, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * R
    # pass 1: the first zero z and the product of the x before it
    z = tl.zeros((), tl.int64) + R
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = load_up(x + base + offs, offs < R, 1).to(ACC)
        z = tl.minimum(z, tl.min(tl.where((offs < R) & (v == 0), offs, R), 0).to(tl.int64))
    before = tl.full((), 1, ACC)
    at_zero = tl.zeros((), ACC)
    carry = tl.full((), 1, ACC)
    # pass 2: before = prod_{i < z} x_i; at_zero = sum_{j >= z} g_j prod_{z < i <= j} x_i
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < R
        v = load_up(x + base + offs, m, 1).to(ACC)
        gv = load_up(g + base + offs, m, 0).to(ACC)
        before = before * tl.reduce(tl.where(offs < z, v, 1), 0, _mul)
        f = tl.where(offs <= z, 1, v).to(ACC)
        after = tl.cumprod(f, 0) * carry
        carry = carry * tl.reduce(f, 0, _mul)
        at_zero += tl.sum(tl.where(m & (offs >= z), gv * after, 0), 0)
    # pass 3 (backwards): suffix sums of g y
    carry = tl.zeros((), ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < R
        pos = R - 1 - offs
        v = load_up(x + base + pos, m, 1).to(ACC)
        gy = (load_up(g + base + pos, m, 0) * load_up(y + base + pos, m, 0))
        gy = tl.where(m, gy.to(ACC), 0)
        rev = tl.cumsum(gy, 0) + carry
        carry = carry + tl.sum(gy, 0)
        dx = tl.where(pos < z, rev / tl.where(v == 0, 1, v), tl.where(pos == z, before * at_zero, 0))
        tl.store(out + base + pos, dx.to(out.dtype.element_ty), mask=m)


def _scan(x: CudaArray, dim: int, np_dtype, prod: bool, reverse: bool) -> CudaArray:
    if x.ndim == 0:
        return cast(x, np_dtype)
    rows, n_rows, R = rows_of(x, (dim,))
    out = CudaArray.empty((n_rows, R), np_dtype)
    if n_rows and R:
        _scan_rows[(n_rows,)](rows, out, R, PROD=prod, REVERSE=reverse, ACC=acc_type(np.dtype(np_dtype)),
                              BLOCK=block_for(R))
    return from_rows(out, x.shape, (dim,))


def cumsum(x: CudaArray, dim, np_dtype, reverse) -> CudaArray:
    """y_i = sum_{j <= i} x_j along dim (sum_{j >= i} with reverse)."""
    return _scan(x, dim, np_dtype, False, bool(reverse))


def cumprod(x: CudaArray, dim, np_dtype) -> CudaArray:
    """y_i = prod_{j <= i} x_j along dim."""
    return _scan(x, dim, np_dtype, True, False)


def cumprod_backward(x: CudaArray, y: CudaArray, g: CudaArray, dim) -> CudaArray:
    """dx of cumprod, exact when x has zeros (see the header)."""
    if x.ndim == 0:
        return cast(g, g.dtype)
    xr, n_rows, R = rows_of(x, (dim,))
    yr, _, _ = rows_of(y, (dim,))
    gr, _, _ = rows_of(g, (dim,))
    out = CudaArray.empty((n_rows, R), g.dtype)
    if n_rows and R:
        _cumprod_backward_rows[(n_rows,)](xr, yr, gr, out, R, ACC=float_acc(g.dtype), BLOCK=block_for(R))
    return from_rows(out, x.shape, (dim,))
