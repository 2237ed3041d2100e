"""Triton kernel: one step of the selective scan (mamba_ssm's selective_state_update) for generation.

    dt' = softplus(dt + bias) (or dt + bias)
    state = exp(dt' A) * state + dt' B x   (in place),   y = C . state + D x,   out = y silu(z)

One program per (batch, block of BD channels): a (BD, BN) tile of the state in registers, read,
updated and written back once; the dot C . state is a row sum of the tile. B and C are
(Bt, G, N), channel d reading group d // (D / G). float64 computes in float64, the rest in float32.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_selective_state_update.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .creation import contiguous, copy_

__all__ = ["selective_state_update"]

BD = 16  # channels per program


@triton.jit
def _update_kernel(state, x, dt, A, B, C, Dskip, z, bias, out, D, N, GB, GSB, GC, GSC,
                   HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                   ACC: tl.constexpr, BD: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BD + tl.arange(0, BD)
    n = tl.arange(0, BN)
    dm = d < D
    m2 = dm[:, None] & (n[None, :] < N)
    row = b * D + d  # (BD,)
    pre = tl.load(dt + row, mask=dm, other=0).to(ACC)
    if HAS_BIAS:
        pre += tl.load(bias + d, mask=dm, other=0).to(ACC)
    step = pre
    if SOFTPLUS:  # PyTorch's softplus (threshold 20); log1p(e) = log(1 + e) e / ((1 + e) - 1)
        e = tl.exp(tl.minimum(pre, 20.0))
        u1 = 1.0 + e
        lp = tl.where(u1 == 1.0, e, tl.log(u1) * e / (u1 - 1.0))
        step = tl.where(pre > 20.0, pre, lp)
    xv = tl.load(x + row, mask=dm, other=0).to(ACC)
    offs = row[:, None] * N + n[None, :]
    s = tl.load(state + offs, mask=m2, other=0).to(ACC)
    a = tl.load(A + d[:, None] * N + n[None, :], mask=m2, other=0).to(ACC)
    bv = tl.load(B + (b * GB + d // GSB)[:, None] * N + n[None, :], mask=m2, other=0).to(ACC)
    cv = tl.load(C + (b * GC + d // GSC)[:, None] * N + n[None, :], mask=m2, other=0).to(ACC)
    s = tl.exp(step[:, None] * a) * s + (step * xv)[:, None] * bv
    tl.store(state + offs, s.to(state.dtype.element_ty), mask=m2)
    y = tl.sum(tl.where(m2, cv * s, 0.0), 1)
    if HAS_D:
        y += tl.load(Dskip + d, mask=dm, other=0).to(ACC) * xv
    if HAS_Z:
        zv = tl.load(z + row, mask=dm, other=0).to(ACC)
        y = y * (zv / (1.0 + tl.exp(-zv)))
    tl.store(out + row, y.to(out.dtype.element_ty), mask=dm)


def selective_state_update(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus):
    bt, d = x.shape
    n = state.shape[2]
    out = CudaArray.empty((bt, d), x.dtype)
    if bt * d == 0:
        return out
    st = state if state.is_contiguous() else contiguous(state)
    c = [None if a is None else contiguous(a) for a in (x, dt, A, B, C, D, z, dt_bias)]
    xc, dtc, Ac, Bc, Cc, Dc, zc, biasc = (a if a is not None else c[0] for a in c)
    acc = tl.float64 if np.dtype(x.dtype) == np.float64 else tl.float32
    _update_kernel[(bt, triton.cdiv(d, BD))](
        st, xc, dtc, Ac, Bc, Cc, Dc, zc, biasc, out, d, n, B.shape[1], d // B.shape[1], C.shape[1],
        d // C.shape[1], HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None,
        SOFTPLUS=bool(dt_softplus), ACC=acc, BD=BD, BN=max(16, triton.next_power_of_2(n)))
    if st is not state:  # a strided state: the step ran on a copy, written back through the view
        copy_(state, st)
    return out
