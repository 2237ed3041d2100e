"""Triton kernels: the causal depthwise conv1d with fused SiLU, its backward, and the generation step.

    pre[b,d,t] = bias[d] + sum_{k: t-K+1+k >= 0} w[d,k] x[b,d,t-K+1+k]        y = silu(pre) or pre
    dpre = dy s (1 + pre (1 - s)), s = sigmoid(pre)                   (pre recomputed, not stored)
    dx[b,d,j] = sum_{k: j+K-1-k < L} w[d,k] dpre[b,d,j+K-1-k]
    dw[d,k] = sum_{b,t} dpre[b,d,t] x[b,d,t-K+1+k]                   db[d] = sum_{b,t} dpre[b,d,t]

Forward and dx: one program per (row (b, d), block of time), the K taps unrolled (K is a
compile-time constant). dpre goes through a (B, D, L) scratch buffer when SiLU is fused. dw/db:
one program per channel d walks the batch and time in blocks, a (time block, K) tile of products
summed at the end: no atomics, deterministic. The update: one lane per row (b, d) reads the
window, shifts its state row left by one and writes x last. Padded taps are skipped (a NaN weight
never meets the padding), as in PyTorch's padded conv1d. float64 computes in float64, the rest in
float32.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_causal_conv1d.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .creation import contiguous, copy_

__all__ = ["causal_conv1d_backward", "causal_conv1d_forward", "causal_conv1d_update"]

BLOCK_T = 128


@triton.jit
def _pre_block(x, w, bias, row, d, t, L, K: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    """The pre-activation at times t (a block) of row (b, d); taps in the padding contribute nothing."""
    acc = tl.zeros(t.shape, ACC)
    if HAS_BIAS:
        acc += tl.load(bias + d).to(ACC)
    for k in tl.static_range(K):
        src = t - (K - 1) + k
        m = (src >= 0) & (t < L)
        xv = tl.load(x + row * L + src, mask=m, other=0).to(ACC)
        acc += tl.where(m, tl.load(w + d * K + k).to(ACC) * xv, 0.0)
    return acc


@triton.jit
def _forward_kernel(x, w, bias, y, D, L, K: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
                    ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    d = row % D
    acc = _pre_block(x, w, bias, row, d, t, L, K, HAS_BIAS, ACC)
    if SILU:
        acc = acc / (1.0 + tl.exp(-acc))
    tl.store(y + row * L + t, acc.to(y.dtype.element_ty), mask=t < L)


@triton.jit
def _dpre_kernel(x, w, bias, dy, dpre, D, L, K: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr,
                 BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    t = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    pre = _pre_block(x, w, bias, row, row % D, t, L, K, HAS_BIAS, ACC)
    g = tl.load(dy + row * L + t, mask=t < L, other=0).to(ACC)
    s = 1.0 / (1.0 + tl.exp(-pre))
    tl.store(dpre + row * L + t, g * s * (1.0 + pre * (1.0 - s)), mask=t < L)


@triton.jit
def _dx_kernel(dpre, w, dx, D, L, K: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    d = row % D
    acc = tl.zeros((BLOCK,), ACC)
    for k in tl.static_range(K):
        src = j + (K - 1) - k
        m = src < L
        g = tl.load(dpre + row * L + src, mask=m, other=0).to(ACC)
        acc += tl.where(m, tl.load(w + d * K + k).to(ACC) * g, 0.0)
    tl.store(dx + row * L + j, acc.to(dx.dtype.element_ty), mask=j < L)


@triton.jit
def _dw_kernel(x, dpre, dw, db, B, D, L, K: tl.constexpr, KP: tl.constexpr, ACC: tl.constexpr,
               BLOCK: tl.constexpr):
    d = tl.program_id(0).to(tl.int64)
    kk = tl.arange(0, KP)
    acc = tl.zeros((BLOCK, KP), ACC)
    acc_b = tl.zeros((BLOCK,), ACC)
    for b in range(B):
        row = b * D + d
        for start in range(0, L, BLOCK):
            t = start + tl.arange(0, BLOCK)
            g = tl.load(dpre + row * L + t, mask=t < L, other=0).to(ACC)
            acc_b += g
            src = t[:, None] - (K - 1) + kk[None, :]  # (BLOCK, KP): x tapped by w[:, k] at time t
            m = (t[:, None] < L) & (src >= 0) & (kk[None, :] < K)
            xv = tl.load(x + row * L + src, mask=m, other=0).to(ACC)
            acc += tl.where(m, g[:, None] * xv, 0.0)
    tl.store(dw + d * K + kk, tl.sum(acc, 0).to(dw.dtype.element_ty), mask=kk < K)
    tl.store(db + d, tl.sum(acc_b, 0).to(db.dtype.element_ty))


@triton.jit
def _update_kernel(x, state, w, bias, y, R, D, S, K: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
                   HAS_STATE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    rm = r < R
    d = r % D
    xv = tl.load(x + r, mask=rm, other=0).to(ACC)
    acc = tl.zeros((BLOCK,), ACC)
    if HAS_BIAS:
        acc += tl.load(bias + d, mask=rm, other=0).to(ACC)
    for k in tl.static_range(K - 1):  # taps 0..K-2 read the state's last K-1 entries
        sv = tl.load(state + r * S + (S - (K - 1) + k), mask=rm, other=0).to(ACC)
        acc += tl.load(w + d * K + k, mask=rm, other=0).to(ACC) * sv
    acc += tl.load(w + d * K + (K - 1), mask=rm, other=0).to(ACC) * xv
    for i in range(S - 1):  # shift left by one, lane by lane in order: each reads i + 1 before it is written
        v = tl.load(state + r * S + (i + 1), mask=rm, other=0)
        tl.store(state + r * S + i, v, mask=rm)
    if HAS_STATE:  # S = 0 (width 1) keeps no inputs
        tl.store(state + r * S + (S - 1), xv.to(state.dtype.element_ty), mask=rm)
    if SILU:
        acc = acc / (1.0 + tl.exp(-acc))
    tl.store(y + r, acc.to(y.dtype.element_ty), mask=rm)


def _acc(dtype):
    return tl.float64 if np.dtype(dtype) == np.float64 else tl.float32


def _acc_np(dtype):
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def causal_conv1d_forward(x, weight, bias, silu):
    bt, d, length = x.shape
    y = CudaArray.empty(x.shape, x.dtype)
    if bt * d and length:
        xc, wc = contiguous(x), contiguous(weight)
        bc = contiguous(bias) if bias is not None else wc
        _forward_kernel[(bt * d, triton.cdiv(length, BLOCK_T))](
            xc, wc, bc, y, d, length, K=weight.shape[1], HAS_BIAS=bias is not None, SILU=bool(silu),
            ACC=_acc(x.dtype), BLOCK=BLOCK_T)
    return y


def causal_conv1d_backward(x, weight, bias, dy, silu):
    bt, d, length = x.shape
    k_width = weight.shape[1]
    xc, wc, gc = contiguous(x), contiguous(weight), contiguous(dy)
    bc = contiguous(bias) if bias is not None else wc
    acc_np = _acc_np(x.dtype)
    dx = CudaArray.empty(x.shape, x.dtype)
    dw = CudaArray.empty(weight.shape, weight.dtype)
    db = CudaArray.empty((d,), bias.dtype if bias is not None else weight.dtype)
    grid = (bt * d, triton.cdiv(length, BLOCK_T))
    dpre = gc
    if silu and bt * d and length:
        dpre = CudaArray.empty(x.shape, acc_np)
        _dpre_kernel[grid](xc, wc, bc, gc, dpre, d, length, K=k_width, HAS_BIAS=bias is not None,
                           ACC=_acc(x.dtype), BLOCK=BLOCK_T)
    if bt * d and length:
        _dx_kernel[grid](dpre, wc, dx, d, length, K=k_width, ACC=_acc(x.dtype), BLOCK=BLOCK_T)
    if d:
        _dw_kernel[(d,)](xc, dpre, dw, db, bt, d, length, K=k_width, KP=triton.next_power_of_2(k_width),
                         ACC=_acc(x.dtype), BLOCK=BLOCK_T)
    return dx, dw, db if bias is not None else None


def causal_conv1d_update(x, conv_state, weight, bias, silu):
    bt, d = x.shape
    s_len = conv_state.shape[2]
    y = CudaArray.empty(x.shape, x.dtype)
    if bt * d == 0:
        return y
    state = conv_state if conv_state.is_contiguous() else contiguous(conv_state)
    xc, wc = contiguous(x), contiguous(weight)
    bc = contiguous(bias) if bias is not None else wc
    block = 128
    _update_kernel[(triton.cdiv(bt * d, block),)](
        xc, state, wc, bc, y, bt * d, d, s_len, K=weight.shape[1], HAS_BIAS=bias is not None, SILU=bool(silu),
        HAS_STATE=s_len > 0, ACC=_acc(x.dtype), BLOCK=block)
    if state is not conv_state:  # a strided state: the step ran on a copy, written back through the view
        copy_(conv_state, state)
    return y
