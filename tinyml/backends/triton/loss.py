"""Triton kernels: fused cross_entropy forward/backward over (N, C) logits (cuda device).

    forward   lse_i = log sum_j e^(x_ij)  (one streaming pass with an online max)
              loss_i = (1 - ls)(lse_i - x_i,t_i) + ls (lse_i - mean_j x_ij);  0 where t_i == ignore_index
    backward  dx_ij = dloss_i (softmax_ij - (1 - ls)[j == t_i] - ls / C);  0 for ignored rows
One program per row; nothing of size N x C is allocated besides the gradient itself.
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton.py
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .copy import contiguous, to_host
from .reduce import accumulator

__all__ = ["cross_entropy_forward", "cross_entropy_backward"]


@triton.jit
def _ce_forward(x, t, loss, lse_out, bad, C, ignore_index, ls, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * C
    m = tl.full((BLOCK,), float("-inf"), ACC)
    s = tl.zeros((BLOCK,), ACC)
    total = tl.zeros((BLOCK,), ACC)
    for start in range(0, C, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + base + offs, mask=offs < C, other=float("-inf")).to(ACC)
        m_new = tl.maximum(m, v)
        safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - safe) + tl.exp(v - safe)
        m = m_new
        total += tl.where(offs < C, v, 0.0)
    m_row = tl.max(m, 0)
    lse = m_row + tl.log(tl.sum(s * tl.exp(m - m_row), 0))
    target = tl.load(t + row)
    ignored = target == ignore_index
    out_of_range = (~ignored) & ((target < 0) | (target >= C))
    tl.store(bad + row, out_of_range.to(tl.int8))
    safe_t = tl.where(ignored | out_of_range, 0, target)
    x_t = tl.load(x + base + safe_t).to(ACC)
    value = (1.0 - ls) * (lse - x_t) + ls * (lse - tl.sum(total, 0) / C)
    tl.store(loss + row, tl.where(ignored, 0.0, value).to(loss.dtype.element_ty))
    tl.store(lse_out + row, lse.to(lse_out.dtype.element_ty))


@triton.jit
def _ce_backward(x, t, lse_in, dloss, dx, C, ignore_index, ls, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * C
    target = tl.load(t + row)
    scale = tl.where(target == ignore_index, 0.0, tl.load(dloss + row).to(ACC))
    lse = tl.load(lse_in + row).to(ACC)
    for start in range(0, C, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + base + offs, mask=offs < C, other=0.0).to(ACC)
        g = tl.exp(v - lse) - ls / C - tl.where(offs == target, 1.0 - ls, 0.0)
        tl.store(dx + base + offs, (g * scale).to(dx.dtype.element_ty), mask=offs < C)


def _block(c: int) -> int:
    return min(triton.next_power_of_2(max(c, 1)), 4096)


def cross_entropy_forward(logits, target, ignore_index, label_smoothing):
    logits, target = contiguous(logits), contiguous(target)
    n, c = logits.shape
    stats = "float64" if logits.dtype.name == "float64" else "float32"
    loss, lse = CudaArray.empty((n,), logits.dtype), CudaArray.empty((n,), stats)
    if n:
        bad = CudaArray.empty((n,), "int8")
        _ce_forward[(n,)](logits, target, loss, lse, bad, c, int(ignore_index), float(label_smoothing),
                          ACC=accumulator(lse.dtype), BLOCK=_block(c))
        flags = to_host(bad)
        if flags.any():  # one small read-back: a bad target must raise, not read out of bounds
            row = int(flags.argmax())
            value = int(to_host(target)[row])
            raise IndexError(f"cross_entropy: target {value} is out of bounds for {c} classes (row {row})")
    return loss, lse


def cross_entropy_backward(logits, target, lse, dloss, ignore_index, label_smoothing):
    logits, target, dloss = contiguous(logits), contiguous(target), contiguous(dloss)
    n, c = logits.shape
    dx = CudaArray.empty(logits.shape, logits.dtype)
    if n:
        _ce_backward[(n,)](logits, target, lse, dloss, dx, c, int(ignore_index), float(label_smoothing),
                           ACC=accumulator(lse.dtype), BLOCK=_block(c))
    return dx
