"""Triton kernels: fused cross_entropy forward/backward over (N, C) logits (cuda device).

    forward   m_i = max_j x_ij,  s_i = log sum_j e^(x_ij - m_i)  (one streaming pass with an online max)
              loss_i = (1 - ls)((m_i - x_i,t_i) + s_i) + ls (s_i - mean_j (x_ij - m_i))
                       (0 where t_i == ignore_index)
    backward  dx_ij = dloss_i (e^((x_ij - m_i) - s_i) - (1 - ls)[j == t_i] - ls / C)
                       (dloss_i = 0 for ignored rows)
The statistics stay apart (m, s), not lse = m + s, which rounds s away for logits of 1e8 in float32;
mean_j (x_ij - m_i) is summed about the row's first logit k (sum (x - k), then + k - m) for the same
reason. NaN/inf follow PyTorch's log_softmax: a NaN or +inf logit makes its row NaN (the loss of an
ignored row stays 0, its gradient NaN); a -inf logit has probability 0.
One program per row; nothing of size N x C is allocated besides the gradient itself.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_loss.py -k cuda
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .creation import contiguous, to_host
from .reduce import accumulator

__all__ = ["cross_entropy_forward", "cross_entropy_backward"]


@triton.jit
def _ce_forward(x, t, loss, max_out, log_sum_out, bad, C, ignore_index, ls, SMOOTH: tl.constexpr,
                ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * C
    k = tl.load(x + base, mask=C > 0, other=0.0).to(ACC)
    k = tl.where(tl.abs(k) < float("inf"), k, 0.0)  # the shift of the mean's sum: finite (NaN fails the test)
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
        if SMOOTH:
            total += tl.where(offs < C, v - k, 0.0)
    m_row = tl.max(m, 0)
    # lanes that saw only padding or -inf (m = -inf) add exp(-inf) = 0; a NaN in s stays NaN
    lane_scale = tl.exp(tl.where(m == float("-inf"), float("-inf"), m - m_row))
    log_sum = tl.log(tl.sum(s * lane_scale, 0))
    target = tl.load(t + row)
    ignored = target == ignore_index
    out_of_range = (~ignored) & ((target < 0) | (target >= C))
    tl.store(bad + row, out_of_range.to(tl.int8))
    safe_t = tl.where(ignored | out_of_range, 0, target)
    x_t = tl.load(x + base + safe_t, mask=C > 0, other=0.0).to(ACC)
    value = (m_row - x_t) + log_sum
    if SMOOTH:  # (not 0 * (log_sum - mean) when off: that is NaN for a row with a -inf logit)
        mean_shifted = tl.sum(total, 0) / C + (k - m_row)
        value = (1.0 - ls) * value + ls * (log_sum - mean_shifted)
    tl.store(loss + row, tl.where(ignored, 0.0, value).to(loss.dtype.element_ty))
    tl.store(max_out + row, m_row.to(max_out.dtype.element_ty))
    tl.store(log_sum_out + row, log_sum.to(log_sum_out.dtype.element_ty))


@triton.jit
def _ce_backward(x, t, max_in, log_sum_in, dloss, dx, C, ignore_index, ls, ACC: tl.constexpr,
                 BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = row * C
    target = tl.load(t + row)
    scale = tl.where(target == ignore_index, 0.0, tl.load(dloss + row).to(ACC))
    m = tl.load(max_in + row).to(ACC)
    log_sum = tl.load(log_sum_in + row).to(ACC)
    for start in range(0, C, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + base + offs, mask=offs < C, other=0.0).to(ACC)
        g = tl.exp((v - m) - log_sum) - ls / C - tl.where(offs == target, 1.0 - ls, 0.0)
        tl.store(dx + base + offs, (g * scale).to(dx.dtype.element_ty), mask=offs < C)


def _block(c: int) -> int:
    return min(triton.next_power_of_2(max(c, 1)), 4096)


def cross_entropy_forward(logits, target, ignore_index, label_smoothing):
    logits, target = contiguous(logits), contiguous(target)
    n, c = logits.shape
    stats = "float64" if logits.dtype.name == "float64" else "float32"
    loss = CudaArray.empty((n,), logits.dtype)
    row_max, log_sum = CudaArray.empty((n,), stats), CudaArray.empty((n,), stats)
    if n:
        bad = CudaArray.empty((n,), "int8")
        _ce_forward[(n,)](logits, target, loss, row_max, log_sum, bad, c, int(ignore_index),
                          float(label_smoothing), SMOOTH=label_smoothing != 0, ACC=accumulator(row_max.dtype),
                          BLOCK=_block(c))
        flags = to_host(bad)
        if flags.any():  # one small read-back: a bad target must raise, not read out of bounds
            row = int(flags.argmax())
            value = int(to_host(target)[row])
            # worded as the reference's (backends/reference/loss.py), and so as the nll_loss kernels'
            raise IndexError(f"Target {value} is out of bounds (expected class indices in [0, {c - 1}] or "
                             f"ignore_index={ignore_index})")
    return loss, row_max, log_sum


def cross_entropy_backward(logits, target, row_max, log_sum, dloss, ignore_index, label_smoothing):
    logits, target, dloss = contiguous(logits), contiguous(target), contiguous(dloss)
    n, c = logits.shape
    dx = CudaArray.empty(logits.shape, logits.dtype)
    if n:
        _ce_backward[(n,)](logits, target, row_max, log_sum, dloss, dx, c, int(ignore_index),
                           float(label_smoothing), ACC=accumulator(row_max.dtype), BLOCK=_block(c))
    return dx
