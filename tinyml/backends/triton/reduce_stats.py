"""Triton kernels: reductions beyond sum, and their gradients, for the cuda device.

    prod, all, any        one pass over each row (row layout: see _rows.py)
    var, std              two passes: the mean, then the sum of squared deviations (no cancellation)
    logsumexp             two passes: m = max, then m + log sum exp(x - m) (m = 0 where it is infinite)
    norm(p)               p = 0, 1, 2, +-inf and general p (|x|^p as exp2(p log2|x|))
    prod_backward         dx_i = g prod_{j != i} x_j as exclusive left x right running products
                          (no division, so zeros are exact)
    norm_backward         PyTorch's per-p formulas; +-inf splits g among ties (a counting pass first)
Each program reduces one row; rows longer than the block loop over chunks. 16-bit floats compute
in float32, float64 in float64.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_reduce.py -k cuda
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._rows import (
    MAX_BLOCK,
    acc_type,
    block_for,
    finish,
    float_acc,
    from_rows,
    load_up,
    per_row,
    rows_of,
    split_plan,
)
from ._strided import upcast

__all__ = ["all", "any", "logsumexp", "norm", "norm_backward", "prod", "prod_backward", "std", "var"]


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _prod_rows(x, out, R, S, CH, ACC: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    row, first = pid // S, (pid % S) * CH
    acc = tl.full((BLOCK,), 1, ACC)
    for start in range(0, CH, BLOCK):
        lane = start + tl.arange(0, BLOCK)
        offs = first + lane
        acc *= load_up(x + row * R + offs, (offs < R) & (lane < CH), 1).to(ACC)
    tl.store(out + pid, tl.reduce(acc, 0, _mul).to(out.dtype.element_ty))


@triton.jit
def _all_any_rows(x, out, R, S, CH, ANY: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    row, first = pid // S, (pid % S) * CH
    if ANY:
        acc = tl.zeros((BLOCK,), tl.int32)
    else:
        acc = tl.full((BLOCK,), 1, tl.int32)
    for start in range(0, CH, BLOCK):
        lane = start + tl.arange(0, BLOCK)
        offs = first + lane
        m = (offs < R) & (lane < CH)
        nz = (tl.load(x + row * R + offs, mask=m, other=0) != 0).to(tl.int32)
        if ANY:
            acc = tl.maximum(acc, tl.where(m, nz, 0))
        else:
            acc = tl.minimum(acc, tl.where(m, nz, 1))
    if ANY:
        r = tl.max(acc, 0)
    else:
        r = tl.min(acc, 0)
    tl.store(out + pid, r.to(out.dtype.element_ty))


@triton.jit
def _moments_rows(x, out, R, div, SQRT: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    s = tl.zeros((BLOCK,), ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        s += load_up(x + row * R + offs, offs < R, 0).to(ACC)
    mean = tl.sum(s, 0) / R
    ss = tl.zeros((BLOCK,), ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < R
        d = load_up(x + row * R + offs, m, 0).to(ACC) - mean
        ss += tl.where(m, d * d, 0)
    r = tl.sum(ss, 0) / div
    if SQRT:
        r = tl.sqrt(r)
    tl.store(out + row, r.to(out.dtype.element_ty))


@triton.jit
def _logsumexp_rows(x, out, R, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    mx = tl.full((BLOCK,), float("-inf"), ACC)
    nan = tl.zeros((BLOCK,), tl.int32)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = load_up(x + row * R + offs, offs < R, float("-inf")).to(ACC)
        nan = tl.maximum(nan, (v != v).to(tl.int32))  # noqa: PLR0124 (x != x: NaN test)
        mx = tl.maximum(mx, v)
    m = tl.max(mx, 0)
    m = tl.where((m == float("inf")) | (m == float("-inf")), 0.0, m).to(ACC)
    s = tl.zeros((BLOCK,), ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = load_up(x + row * R + offs, offs < R, float("-inf")).to(ACC)
        s += tl.exp(v - m)
    r = tl.log(tl.sum(s, 0)) + m
    r = tl.where(tl.max(nan, 0) > 0, float("nan"), r)
    tl.store(out + row, r.to(out.dtype.element_ty))


@triton.jit
def _abs_pow(a, p):
    """|x|^p for |x| >= 0 and p > 0 (0^p = 0)."""
    return tl.where(a == 0, 0.0, tl.exp2(p * tl.log2(a)))


@triton.jit
def _norm_rows(x, out, R, S, CH, p, P: tl.constexpr, STAGE: tl.constexpr, ACC: tl.constexpr,
               BLOCK: tl.constexpr):
    """STAGE 0: the norm of each row; 1: a chunk's partial (sum of |x|^p, or max/min |x|);
    2: the norm from a row of partials."""
    pid = tl.program_id(0).to(tl.int64)
    row, first = pid // S, (pid % S) * CH
    if P == "-inf":
        acc = tl.full((BLOCK,), float("inf"), ACC)
    else:
        acc = tl.zeros((BLOCK,), ACC)
    nan = tl.zeros((BLOCK,), tl.int32)
    for start in range(0, CH, BLOCK):
        lane = start + tl.arange(0, BLOCK)
        offs = first + lane
        m = (offs < R) & (lane < CH)
        a = tl.abs(load_up(x + row * R + offs, m, 0).to(ACC))
        nan = tl.maximum(nan, (a != a).to(tl.int32))  # noqa: PLR0124 (x != x: NaN test)
        if P == "inf":
            acc = tl.maximum(acc, a)
        elif P == "-inf":
            acc = tl.minimum(acc, tl.where(m, a, float("inf")))
        elif STAGE == 2:
            acc += a  # partial sums add up
        elif P == "0":
            acc += (a != 0).to(ACC)
        elif P == "1":
            acc += a
        elif P == "2":
            acc += a * a
        else:
            acc += _abs_pow(a, p).to(ACC)
    if P == "inf":
        r = tl.max(acc, 0)
    elif P == "-inf":
        r = tl.min(acc, 0)
    elif STAGE == 1:
        r = tl.sum(acc, 0)
    elif P == "2":
        r = tl.sqrt(tl.sum(acc, 0))
    elif P == "p":
        s = tl.sum(acc, 0)
        r = tl.where(s == 0, 0.0, tl.exp2(tl.log2(s) / p))
    else:
        r = tl.sum(acc, 0)
    r = tl.where(tl.max(nan, 0) > 0, float("nan"), r)
    tl.store(out + pid, r.to(out.dtype.element_ty))


@triton.jit
def _prod_backward_rows(x, g, out, R, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """out_i = g prod_{j < i} x_j prod_{j > i} x_j: left products written first, then scaled."""
    row = tl.program_id(0).to(tl.int64)
    base = row * R
    carry = tl.full((), 1, ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        prev = load_up(x + base + offs - 1, (offs < R) & (offs > 0), 1).to(ACC)
        left = tl.cumprod(prev, 0) * carry
        tl.store(out + base + offs, left.to(out.dtype.element_ty), mask=offs < R)
        carry = carry * tl.reduce(prev, 0, _mul)
        # the chunk's last element is the next chunk's first "prev"
    gr = upcast(tl.load(g + row)).to(ACC)
    carry = tl.full((), 1, ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        pos = R - 1 - offs
        nxt = load_up(x + base + pos + 1, (offs < R) & (pos < R - 1), 1).to(ACC)
        right = tl.cumprod(nxt, 0) * carry
        left = load_up(out + base + pos, offs < R, 1).to(ACC)
        tl.store(out + base + pos, (left * right * gr).to(out.dtype.element_ty), mask=offs < R)
        carry = carry * tl.reduce(nxt, 0, _mul)


@triton.jit
def _norm_backward_rows(x, y, g, out, R, p, P: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * R
    yr = upcast(tl.load(y + row)).to(ACC)
    gr = upcast(tl.load(g + row)).to(ACC)
    count = tl.zeros((BLOCK,), ACC)
    if P == "inf":
        for start in range(0, R, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            a = tl.abs(load_up(x + base + offs, offs < R, 0).to(ACC))
            count += tl.where((offs < R) & (a == yr), 1.0, 0.0).to(ACC)
    n_ties = tl.sum(count, 0)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < R
        v = load_up(x + base + offs, m, 0).to(ACC)
        a = tl.abs(v)
        sign = tl.where(v > 0, 1.0, tl.where(v < 0, -1.0, 0.0)).to(ACC)
        sign = tl.where(v != v, v, sign)  # noqa: PLR0124 (x != x: NaN test)
        if P == "0":
            dx = tl.zeros((BLOCK,), ACC)
        elif P == "1":
            dx = sign * gr
        elif P == "2":
            dx = v * tl.where(yr == 0, 0.0, gr / yr)
        elif P == "inf":
            dx = tl.where(a == yr, sign * gr / n_ties, 0.0)
        elif P == "small":  # p < 1
            scaled = tl.where(v == 0, 0.0, sign * tl.exp2((p - 1) * tl.log2(a)))
            dx = scaled * gr * tl.exp2((1 - p) * tl.log2(yr))
        else:
            scaled = sign * _abs_pow(a, p - 1)
            dx = scaled * tl.where(yr == 0, 0.0, gr / tl.exp2((p - 1) * tl.log2(yr)))
        tl.store(out + base + offs, dx.to(out.dtype.element_ty), mask=m)


def _launch_rows(x: CudaArray, dims, out_dtype, kernel, **meta) -> CudaArray:
    rows, n_rows, R = rows_of(x, dims)
    out = CudaArray.empty((n_rows,), out_dtype)
    if n_rows:
        kernel[(n_rows,)](rows, out, R, BLOCK=block_for(R), **meta)
    return out


def launch_split(x: CudaArray, dims, out_dtype, partial_dtype, kernel, stages=None, **meta) -> CudaArray:
    """Run an associative row kernel (x, out, R, S, CH, ...), splitting few long rows into chunks
    whose partials (partial_dtype) a second launch combines. `stages` gives the extra constexprs of
    (one-shot, partial, combine) launches when the kernel needs to know."""
    rows, n_rows, R = rows_of(x, dims)
    out = CudaArray.empty((n_rows,), out_dtype)
    if not n_rows:
        return out
    one, part, comb = stages or ({}, {}, {})
    S, CH = split_plan(n_rows, R)
    if S == 1:
        kernel[(n_rows,)](rows, out, R, 1, R, BLOCK=block_for(R), **meta, **one)
        return out
    partials = CudaArray.empty((n_rows * S,), partial_dtype)
    kernel[(n_rows * S,)](rows, partials, R, S, CH, BLOCK=MAX_BLOCK, **meta, **part)
    kernel[(n_rows,)](partials, out, S, 1, S, BLOCK=block_for(S), **meta, **comb)
    return out


def prod(x: CudaArray, dims, keepdim, np_dtype) -> CudaArray:
    """prod_{i in dims} x_i, in np_dtype (float32 accumulation for 16-bit floats)."""
    dims = tuple(dims)
    part = np.float32 if np.dtype(np_dtype).itemsize == 2 and np.dtype(np_dtype).kind in "fV" else np_dtype
    out = launch_split(x, dims, np_dtype, part, _prod_rows, ACC=acc_type(np_dtype))
    return finish(out, x.shape, dims, keepdim)


def _all_any(x, dims, keepdim, is_any):
    dims = tuple(dims)
    dt = np.uint8 if x.dtype == np.uint8 else np.bool_
    out = launch_split(x, dims, dt, dt, _all_any_rows, ANY=is_any)
    return finish(out, x.shape, dims, keepdim)


def all(x: CudaArray, dims, keepdim) -> CudaArray:
    """True where every element along dims is nonzero (uint8 in, uint8 out)."""
    return _all_any(x, dims, keepdim, False)


def any(x: CudaArray, dims, keepdim) -> CudaArray:
    """True where some element along dims is nonzero."""
    return _all_any(x, dims, keepdim, True)


def _moments(x, dims, correction, keepdim, take_sqrt):
    dims = tuple(dims)
    n = math.prod(x.shape[d] for d in dims)
    out = _launch_rows(x, dims, x.dtype, _moments_rows, div=float(max(n - correction, 0)), SQRT=take_sqrt,
                       ACC=float_acc(x.dtype))
    return finish(out, x.shape, dims, keepdim)


def var(x: CudaArray, dims, correction, keepdim) -> CudaArray:
    """sum (x - mean)^2 / max(n - correction, 0), two passes."""
    return _moments(x, dims, correction, keepdim, False)


def std(x: CudaArray, dims, correction, keepdim) -> CudaArray:
    """sqrt(var)."""
    return _moments(x, dims, correction, keepdim, True)


def logsumexp(x: CudaArray, dims, keepdim) -> CudaArray:
    """m + log sum exp(x - m), m the row max (0 where infinite); empty rows give -inf."""
    dims = tuple(dims)
    out = _launch_rows(x, dims, x.dtype, _logsumexp_rows, ACC=float_acc(x.dtype))
    return finish(out, x.shape, dims, keepdim)


def _p_kind(p) -> str:
    if p == math.inf:
        return "inf"
    if p == -math.inf:
        return "-inf"
    if p in (0, 1, 2):
        return str(int(p))
    return "p"


def norm(x: CudaArray, p, dims, keepdim) -> CudaArray:
    """Vector p-norm over dims: (sum |x|^p)^(1/p); +-inf: max/min |x|; 0: count of nonzeros."""
    dims = tuple(dims)
    acc = float_acc(x.dtype)
    stages = ({"STAGE": 0}, {"STAGE": 1}, {"STAGE": 2})
    out = launch_split(x, dims, x.dtype, np.float64 if acc == tl.float64 else np.float32, _norm_rows, stages,
                       p=float(p) if math.isfinite(p) else 0.0, P=_p_kind(p), ACC=acc)
    return finish(out, x.shape, dims, keepdim)


def prod_backward(x: CudaArray, g: CudaArray, dims) -> CudaArray:
    """dx_i = g prod_{j != i} x_j (g in keepdim form)."""
    dims = tuple(dims)
    rows, n_rows, R = rows_of(x, dims)
    out = CudaArray.empty((n_rows, R), g.dtype)
    if n_rows and R:
        _prod_backward_rows[(n_rows,)](rows, per_row(g, x.shape, dims), out, R, ACC=float_acc(x.dtype),
                                       BLOCK=block_for(R))
    return from_rows(out, x.shape, dims)


def norm_backward(x: CudaArray, y: CudaArray, g: CudaArray, p, dims) -> CudaArray:
    """dx of the p-norm (y, g in keepdim form); see the reference for the formulas."""
    dims = tuple(dims)
    rows, n_rows, R = rows_of(x, dims)
    out = CudaArray.empty((n_rows, R), g.dtype)
    kind = _p_kind(p)
    if kind in ("inf", "-inf"):
        kind = "inf"  # both select |x| == y
    elif kind == "p" and p < 1:
        kind = "small"
    if n_rows and R:
        _norm_backward_rows[(n_rows,)](rows, per_row(y, x.shape, dims), per_row(g, x.shape, dims), out, R,
                                       float(p) if math.isfinite(p) else 0.0, P=kind, ACC=float_acc(x.dtype),
                                       BLOCK=block_for(R))
    return from_rows(out, x.shape, dims)
