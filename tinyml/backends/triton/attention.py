"""Triton kernels: flash attention forward and backward (cuda device).

    s = q k^T scale + mask (causal: keys j > query i are -inf, PyTorch's top-left alignment)
    forward:  per block of queries, stream key blocks with an online softmax
              m' = max(m, rowmax s), l' = l e^(m - m') + rowsum e^(s - m'),
              acc' = acc e^(m - m') + e^(s - m') v
              out = acc / l, lse = m + log l        (saved: out and lse only, O(T) per head)
    backward: p = e^(s - lse) recomputed tile by tile, D_i = rowsum(dout * out)
              dv = p^T dout, dp = dout v^T, ds = p (dp - D), dk = ds^T q scale     (one kernel per key block)
              dq = ds k scale                                                    (one kernel per query block)
No atomics, no T x T buffer. Inputs (B, H, T, D) contiguous; the mask is any float array
broadcastable to (B, H, Tq, Tk), read through stride-0 dims. A fully masked row gives out = 0
and lse = -inf; a NaN score (NaN in q, k or the mask) gives a NaN row and lse, as PyTorch. Head
dims are padded to a power of two inside the kernel (masked loads); a zero-size head dim or
sequence gives what the masked loads make of it (E = 0: every score 0).
Packed layout (attention_packed_forward / attention_packed_backward, qkv (B, T, 3 H D) as a fused
projection writes it, out (B, T, H D)): q, k, v are gathered from their (B, H, T, D) views of qkv
by the strided copy kernel and the results scattered back the same way around the kernels above
(three extra copies per call; a strided-load variant of the kernels would read them in place).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_attention.py -k cuda
"""
from __future__ import annotations

import triton
import triton.language as tl

from .. import cuda
from ..cuda_array import CudaArray
from ._view import expand
from .creation import contiguous, copy_, full

__all__ = ["attention_forward", "attention_backward", "attention_packed_forward", "attention_packed_backward"]


@triton.jit
def _scores(q, k, mask_ptr, offs_m, offs_n, Tq, Tk, scale, smm, smn, HAS_MASK: tl.constexpr,
            CAUSAL: tl.constexpr):
    s = tl.dot(q, tl.trans(k)) * scale
    valid = (offs_m[:, None] < Tq) & (offs_n[None, :] < Tk)
    if HAS_MASK:
        s += tl.load(mask_ptr + offs_m[:, None] * smm + offs_n[None, :] * smn, mask=valid,
                     other=0.0).to(tl.float32)
    if CAUSAL:
        valid = valid & (offs_n[None, :] <= offs_m[:, None])
    return tl.where(valid, s, float("-inf"))


@triton.jit
def _load_tile(PTR, rows, n_rows, cols, n_cols, UPCAST: tl.constexpr):
    """Tile [rows, cols] of the row-major (n_rows, n_cols) matrix at PTR, 0 outside it; float32
    when UPCAST (the interpreter's 16-bit arithmetic is wrong)."""
    x = tl.load(PTR + rows[:, None] * n_cols + cols[None, :],
                mask=(rows[:, None] < n_rows) & (cols[None, :] < n_cols), other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    return x


@triton.jit
def _store_tile(PTR, x, rows, n_rows, cols, n_cols):
    tl.store(PTR + rows[:, None] * n_cols + cols[None, :], x.to(PTR.dtype.element_ty),
             mask=(rows[:, None] < n_rows) & (cols[None, :] < n_cols))


@triton.jit
def _head(M, H, smb, smh):
    """This program's (batch * head) index, and where its (Tq, Tk) slice of the mask starts."""
    bh = tl.program_id(1).to(tl.int64)
    return bh, M + (bh // H) * smb + (bh % H) * smh


@triton.jit
def _key_block(K, V, bh, offs_n, offs_d, offs_dv, Tk, D, DV, UPCAST: tl.constexpr):
    """A block of keys and their values: k (BLOCK_N, BLOCK_D), v (BLOCK_N, BLOCK_DV)."""
    k = _load_tile(K + bh * Tk * D, offs_n, Tk, offs_d, D, UPCAST)
    v = _load_tile(V + bh * Tk * DV, offs_n, Tk, offs_dv, DV, UPCAST)
    return k, v


@triton.jit
def _keys_end(Tk, pid_m, BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr):
    """Where a query block's key loop stops: every key, or (causal) the last one its rows see."""
    end = Tk
    if CAUSAL:
        end = tl.minimum(Tk, (pid_m + 1) * BLOCK_M)
    return end


@triton.jit
def _fwd_kernel(Q, K, V, M, OUT, LSE, H, Tq, Tk, D, DV, scale, smb, smh, smm, smn,
                HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    pid_m = tl.program_id(0)
    bh, mask_ptr = _head(M, H, smb, smh)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    q = _load_tile(Q + bh * Tq * D, offs_m, Tq, offs_d, D, UPCAST)
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_DV), tl.float32)
    for start in range(0, _keys_end(Tk, pid_m, BLOCK_M, CAUSAL), BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        k, v = _key_block(K, V, bh, offs_n, offs_d, offs_dv, Tk, D, DV, UPCAST)
        s = _scores(q, k, mask_ptr, offs_m, offs_n, Tq, Tk, scale, smm, smn, HAS_MASK, CAUSAL)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    no_keys = l_i == 0  # every key masked: out = 0, lse = -inf (a NaN l_i, from a NaN score, stays NaN)
    out = acc / tl.where(no_keys, 1.0, l_i)[:, None]
    lse = tl.where(no_keys, float("-inf"), m_i + tl.log(tl.where(no_keys, 1.0, l_i)))
    _store_tile(OUT + bh * Tq * DV, out, offs_m, Tq, offs_dv, DV)
    tl.store(LSE + bh * Tq + offs_m, lse, mask=offs_m < Tq)


@triton.jit
def _delta_kernel(OUT, DO, DELTA, Tq, DV, BLOCK_M: tl.constexpr, BLOCK_DV: tl.constexpr):
    bh = tl.program_id(1).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_dv = tl.arange(0, BLOCK_DV)
    o = _load_tile(OUT + bh * Tq * DV, offs_m, Tq, offs_dv, DV, True)
    do = _load_tile(DO + bh * Tq * DV, offs_m, Tq, offs_dv, DV, True)
    tl.store(DELTA + bh * Tq + offs_m, tl.sum(o * do, 1), mask=offs_m < Tq)


@triton.jit
def _query_block(Q, DO, LSE, DELTA, bh, offs_m, offs_d, offs_dv, Tq, D, DV, UPCAST: tl.constexpr):
    """What the backward reads of a block of queries: q, dout, lse and D = rowsum(dout * out)."""
    q = _load_tile(Q + bh * Tq * D, offs_m, Tq, offs_d, D, UPCAST)
    do = _load_tile(DO + bh * Tq * DV, offs_m, Tq, offs_dv, DV, UPCAST)
    lse = tl.load(LSE + bh * Tq + offs_m, mask=offs_m < Tq, other=float("-inf"))
    delta = tl.load(DELTA + bh * Tq + offs_m, mask=offs_m < Tq, other=0.0)
    return q, do, lse, delta


@triton.jit
def _probs_and_dscores(q, k, v, do, lse, delta, mask_ptr, offs_m, offs_n, Tq, Tk, scale, smm, smn,
                       HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr):
    """One (query block, key block) tile of the backward: p = e^(s - lse) recomputed, and
    ds = p (dp - D) with dp = dout v^T."""
    s = _scores(q, k, mask_ptr, offs_m, offs_n, Tq, Tk, scale, smm, smn, HAS_MASK, CAUSAL)
    lse_safe = tl.where(lse == float("-inf"), float("inf"), lse)  # fully masked row: p = 0
    p = tl.exp(s - lse_safe[:, None])
    dp = tl.dot(do, tl.trans(v)).to(tl.float32)
    ds = p * (dp - delta[:, None])
    if CAUSAL:  # a masked score is the constant -inf: its gradient is 0 (not 0 * NaN in a NaN row)
        ds = tl.where(offs_n[None, :] <= offs_m[:, None], ds, 0.0)
    return p, ds


@triton.jit
def _dkdv_kernel(Q, K, V, M, DO, LSE, DELTA, DK, DV_, H, Tq, Tk, D, DV, scale, smb, smh, smm, smn,
                 HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    pid_n = tl.program_id(0)
    bh, mask_ptr = _head(M, H, smb, smh)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    k, v = _key_block(K, V, bh, offs_n, offs_d, offs_dv, Tk, D, DV, UPCAST)
    dk = tl.zeros((BLOCK_N, BLOCK_D), tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_DV), tl.float32)
    start_m = 0
    if CAUSAL:
        start_m = (pid_n * BLOCK_N) // BLOCK_M * BLOCK_M
    for start in range(start_m, Tq, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M)
        q, do, lse, delta = _query_block(Q, DO, LSE, DELTA, bh, offs_m, offs_d, offs_dv, Tq, D, DV, UPCAST)
        p, ds = _probs_and_dscores(q, k, v, do, lse, delta, mask_ptr, offs_m, offs_n, Tq, Tk, scale, smm, smn,
                                   HAS_MASK, CAUSAL)
        dv += tl.dot(tl.trans(p).to(do.dtype), do)
        dk += tl.dot(tl.trans(ds).to(q.dtype), q)
    _store_tile(DK + bh * Tk * D, dk * scale, offs_n, Tk, offs_d, D)
    _store_tile(DV_ + bh * Tk * DV, dv, offs_n, Tk, offs_dv, DV)


@triton.jit
def _dq_kernel(Q, K, V, M, DO, LSE, DELTA, DQ, H, Tq, Tk, D, DV, scale, smb, smh, smm, smn,
               HAS_MASK: tl.constexpr, CAUSAL: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
               BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    pid_m = tl.program_id(0)
    bh, mask_ptr = _head(M, H, smb, smh)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    q, do, lse, delta = _query_block(Q, DO, LSE, DELTA, bh, offs_m, offs_d, offs_dv, Tq, D, DV, UPCAST)
    dq = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for start in range(0, _keys_end(Tk, pid_m, BLOCK_M, CAUSAL), BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        k, v = _key_block(K, V, bh, offs_n, offs_d, offs_dv, Tk, D, DV, UPCAST)
        _, ds = _probs_and_dscores(q, k, v, do, lse, delta, mask_ptr, offs_m, offs_n, Tq, Tk, scale, smm, smn,
                                   HAS_MASK, CAUSAL)
        dq += tl.dot(ds.to(k.dtype), k)
    _store_tile(DQ + bh * Tq * D, dq * scale, offs_m, Tq, offs_d, D)


def _config(q: CudaArray, k: CudaArray, v: CudaArray):
    if q.dtype.name not in ("float32", "float16", "bfloat16"):
        raise TypeError(f"cuda attention supports float32, float16 and bfloat16, got {q.dtype}")
    emulated = cuda.emulated()
    block = 16 if emulated else 64
    return dict(UPCAST=emulated and q.dtype.itemsize == 2, BLOCK_M=block, BLOCK_N=block,
                BLOCK_D=max(16, triton.next_power_of_2(q.shape[3])),
                BLOCK_DV=max(16, triton.next_power_of_2(v.shape[3])))


def _mask_args(mask, shape):
    if mask is None:
        return None, (0, 0, 0, 0)
    m = expand(mask, shape)
    return m, m.element_strides()


def attention_forward(q, k, v, mask, is_causal, scale):
    q, k, v = contiguous(q), contiguous(k), contiguous(v)
    B, H, Tq, D = q.shape
    Tk, DV = k.shape[2], v.shape[3]
    out = CudaArray.empty((B, H, Tq, DV), q.dtype)
    lse = CudaArray.empty((B, H, Tq), "float32")
    meta = _config(q, k, v)
    m, ms = _mask_args(mask, (B, H, Tq, Tk))
    if out.numel():
        grid = (triton.cdiv(Tq, meta["BLOCK_M"]), B * H)
        _fwd_kernel[grid](q, k, v, m if m is not None else q, out, lse, H, Tq, Tk, D, DV, float(scale), *ms,
                          HAS_MASK=m is not None, CAUSAL=bool(is_causal), **meta)
    return out, lse


def attention_backward(q, k, v, out, lse, dout, mask, is_causal, scale):
    q, k, v, out, dout = (contiguous(a) for a in (q, k, v, out, dout))
    B, H, Tq, D = q.shape
    Tk, DV = k.shape[2], v.shape[3]
    meta = _config(q, k, v)
    m, ms = _mask_args(mask, (B, H, Tq, Tk))
    if not (B * H * Tq and Tk):  # no queries or no keys: nothing flows back, the gradients are 0
        return tuple(full(a.shape, 0, a.dtype) for a in (q, k, v))
    dq, dk, dv = (CudaArray.empty(a.shape, a.dtype) for a in (q, k, v))
    delta = CudaArray.empty((B, H, Tq), "float32")
    q_blocks, k_blocks = triton.cdiv(Tq, meta["BLOCK_M"]), triton.cdiv(Tk, meta["BLOCK_N"])
    _delta_kernel[(q_blocks, B * H)](out, dout, delta, Tq, DV, BLOCK_M=meta["BLOCK_M"],
                                     BLOCK_DV=meta["BLOCK_DV"])
    args = (q, k, v, m if m is not None else q, dout, lse, delta)
    flags = dict(HAS_MASK=m is not None, CAUSAL=bool(is_causal), **meta)
    _dkdv_kernel[(k_blocks, B * H)](*args, dk, dv, H, Tq, Tk, D, DV, float(scale), *ms, **flags)
    _dq_kernel[(q_blocks, B * H)](*args, dq, H, Tq, Tk, D, DV, float(scale), *ms, **flags)
    return dq, dk, dv


def _heads(x: CudaArray, n_head: int, parts: int, part: int) -> CudaArray:
    """Part `part` of a (B, T, parts * H * D) array as a (B, H, T, D) view (no copy)."""
    B, T, width = x.shape
    C = width // parts
    D = C // n_head
    sb, st, _ = x.element_strides()
    return x.as_strided((B, n_head, T, D), (sb, D, st, 1), x.offset + part * C)


def attention_packed_forward(qkv, n_head, is_causal, scale):
    qkv = contiguous(qkv)
    B, T, C3 = qkv.shape
    q, k, v = (contiguous(_heads(qkv, n_head, 3, i)) for i in range(3))
    out_h, lse = attention_forward(q, k, v, None, is_causal, scale)
    out = CudaArray.empty((B, T, C3 // 3), qkv.dtype)
    copy_(_heads(out, n_head, 1, 0), out_h)
    return out, lse


def attention_packed_backward(qkv, out, lse, dout, n_head, is_causal, scale):
    qkv, out, dout = contiguous(qkv), contiguous(out), contiguous(dout)
    q, k, v = (contiguous(_heads(qkv, n_head, 3, i)) for i in range(3))
    o, g = (contiguous(_heads(a, n_head, 1, 0)) for a in (out, dout))
    grads = attention_backward(q, k, v, o, lse, g, None, is_causal, scale)
    dqkv = CudaArray.empty(qkv.shape, qkv.dtype)
    for i, grad in enumerate(grads):
        copy_(_heads(dqkv, n_head, 3, i), grad)
    return dqkv
