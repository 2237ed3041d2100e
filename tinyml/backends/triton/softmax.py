"""Triton kernels: softmax and log_softmax over one dim, forward and backward (cuda device), computed in
float32 (float64 for float64 inputs).

One program per row; rows longer than the block are streamed with an online max/sum:
    m' = max(m, max(x_blk)),  s' = s e^(m - m') + sum e^(x_blk - m')
then a second pass writes y = e^(x - m) / s  (or x - m - log s).
Backward: dx = y (dy - sum dy y)  |  dx = dy - e^y sum dy.
A dim other than the last is moved last with a strided copy.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_softmax.py
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._view import permute, view
from .creation import contiguous
from .reduce import accumulator

__all__ = ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward"]


@triton.jit
def _forward_kernel(x, y, N, LOG: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * N
    m = tl.full((BLOCK,), float("-inf"), ACC)
    s = tl.zeros((BLOCK,), ACC)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + row + offs, mask=offs < N, other=float("-inf")).to(ACC)
        m_new = tl.maximum(m, v)
        safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - safe) + tl.exp(v - safe)
        m = m_new
    m_row = tl.max(m, 0)
    m_row = tl.where(m_row == float("-inf"), 0.0, m_row)
    s_row = tl.sum(s * tl.exp(m - m_row), 0)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + row + offs, mask=offs < N, other=0.0).to(ACC)
        if LOG:
            r = v - m_row - tl.log(s_row)
        else:
            r = tl.exp(v - m_row) / s_row
        tl.store(y + row + offs, r.to(y.dtype.element_ty), mask=offs < N)


@triton.jit
def _backward_kernel(y, dy, dx, N, LOG: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * N
    acc = tl.zeros((BLOCK,), ACC)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        g = tl.load(dy + row + offs, mask=offs < N, other=0.0).to(ACC)
        if LOG:
            acc += g
        else:
            acc += g * tl.load(y + row + offs, mask=offs < N, other=0.0).to(ACC)
    total = tl.sum(acc, 0)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        g = tl.load(dy + row + offs, mask=offs < N, other=0.0).to(ACC)
        v = tl.load(y + row + offs, mask=offs < N, other=0.0).to(ACC)
        if LOG:
            r = g - tl.exp(v) * total
        else:
            r = v * (g - total)
        tl.store(dx + row + offs, r.to(dx.dtype.element_ty), mask=offs < N)


def _last(x: CudaArray, dim: int) -> CudaArray:
    if dim in (-1, x.ndim - 1):
        return contiguous(x)
    order = [d for d in range(x.ndim) if d != dim] + [dim]
    return contiguous(permute(x, order))


def _restore(y: CudaArray, like_ndim: int, dim: int) -> CudaArray:
    if dim in (-1, like_ndim - 1):
        return y
    order = [d for d in range(like_ndim) if d != dim] + [dim]
    inverse = [order.index(d) for d in range(like_ndim)]
    return contiguous(permute(y, inverse))


def _block(n: int) -> int:
    return min(triton.next_power_of_2(max(n, 1)), 4096)


def _forward(x: CudaArray, dim: int, log: bool) -> CudaArray:
    xl = _last(x, dim)
    n = xl.shape[-1] if xl.ndim else 1
    rows = xl.numel() // max(n, 1)
    y = CudaArray.empty(xl.shape, xl.dtype)
    if rows and n:
        _forward_kernel[(rows,)](view(xl, (rows, n)), y, n, LOG=log, ACC=accumulator(xl.dtype),
                                 BLOCK=_block(n))
    return _restore(y, x.ndim, dim)


def _backward(y: CudaArray, dy: CudaArray, dim: int, log: bool) -> CudaArray:
    yl, gl = _last(y, dim), _last(dy, dim)
    n = yl.shape[-1] if yl.ndim else 1
    rows = yl.numel() // max(n, 1)
    dx = CudaArray.empty(yl.shape, yl.dtype)
    if rows and n:
        _backward_kernel[(rows,)](yl, gl, dx, n, LOG=log, ACC=accumulator(yl.dtype), BLOCK=_block(n))
    return _restore(dx, y.ndim, dim)


def softmax_forward(x, dim):
    return _forward(x, dim, False)


def log_softmax_forward(x, dim):
    return _forward(x, dim, True)


def softmax_backward(y, dy, dim):
    return _backward(y, dy, dim, False)


def log_softmax_backward(y, dy, dim):
    return _backward(y, dy, dim, True)
