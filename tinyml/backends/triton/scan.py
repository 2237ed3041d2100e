"""Triton kernels: the selective scan (Mamba's S6 recurrence) for the cuda device.

    dt_t = softplus(delta_t + bias) (or delta_t + bias);  x_t = exp(dt_t A) x_{t-1} + dt_t B_t u_t
    y_t = C_t . x_t + D u_t;  out_t = y_t silu(z_t)                      (x: N states per channel)
One program per (batch, channel) holds its N states in registers and walks time in order: the
recurrence is sequential in t, the N states and the Bt x D programs run in parallel.
Backward runs in two passes in the same program:
    1. forward again, keeping every state x_t (a (Bt, D, L, N) scratch buffer), dy = dout z sig(z)
       (and dz), and dC_t = dy_t x_t
    2. the reverse-time recurrence h_t = h_{t+1} exp(dt_{t+1} A) + dy_t C_t, giving du, ddelta,
       and dA, dB (time-invariant: summed in registers over t), dD, ddelta_bias
Sums over channels and batches (dA, dB, dC, dD, ddelta_bias) meet in atomic adds into float32
(float64) buffers. float32 computes in float32, float64 in float64. B and C are (D, N) or
(Bt, G, N, L).
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton_conv.py
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .creation import cast, contiguous, full

__all__ = ["selective_scan_backward", "selective_scan_forward"]


@triton.jit
def _dt(delta, bias, b, d, t, D, L, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, ACC: tl.constexpr):
    """(dt, the pre-activation) at (b, d, t)."""
    pre = tl.load(delta + (b * D + d) * L + t).to(ACC)
    if HAS_BIAS:
        pre += tl.load(bias + d).to(ACC)
    dt = pre
    if SOFTPLUS:
        e = tl.exp(tl.minimum(pre, 20.0))
        u1 = 1.0 + e
        lp = tl.where(u1 == 1.0, e, tl.log(u1) * e / (u1 - 1.0))  # log1p(e)
        dt = tl.where(pre > 20.0, pre, lp)
    return dt, pre


@triton.jit
def _bc(M, b, d, t, n, nm, D, L, GS, N, VARYING: tl.constexpr, ACC: tl.constexpr):
    """B or C at (b, d, :, t): (D, N) time-invariant, or (Bt, G, N, L) with group d // GS."""
    if VARYING:
        G = D // GS
        v = tl.load(M + ((b * G + d // GS) * N + n) * L + t, mask=nm, other=0)
    else:
        v = tl.load(M + d * N + n, mask=nm, other=0)
    return v.to(ACC)


@triton.jit
def _bc_offsets(b, d, t, n, D, L, GS, N, VARYING: tl.constexpr):
    if VARYING:
        G = D // GS
        off = ((b * G + d // GS) * N + n) * L + t
    else:
        off = d * N + n
    return off


@triton.jit
def _scan_forward_kernel(u, delta, A, Bm, Cm, Dv, z, bias, out, last, D, L, N, GS_B, GS_C, HAS_D: tl.constexpr,
                         HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                         B_VARY: tl.constexpr, C_VARY: tl.constexpr, ACC: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1).to(tl.int64)
    n = tl.arange(0, BN)
    nm = n < N
    a = tl.load(A + d * N + n, mask=nm, other=0).to(ACC)
    x = tl.zeros((BN,), ACC)
    if HAS_D:
        dskip = tl.load(Dv + d).to(ACC)
    for t in range(L):
        dt, _ = _dt(delta, bias, b, d, t, D, L, HAS_BIAS, SOFTPLUS, ACC)
        uv = tl.load(u + (b * D + d) * L + t).to(ACC)
        x = tl.exp(dt * a) * x + dt * uv * _bc(Bm, b, d, t, n, nm, D, L, GS_B, N, B_VARY, ACC)
        y = tl.sum(tl.where(nm, _bc(Cm, b, d, t, n, nm, D, L, GS_C, N, C_VARY, ACC) * x, 0.0), 0)
        if HAS_D:
            y += dskip * uv
        if HAS_Z:
            zv = tl.load(z + (b * D + d) * L + t).to(ACC)
            y = y * zv / (1.0 + tl.exp(-zv))
        tl.store(out + (b * D + d) * L + t, y.to(out.dtype.element_ty))
    tl.store(last + (b * D + d) * N + n, x.to(last.dtype.element_ty), mask=nm)


@triton.jit
def _scan_backward_kernel(u, delta, A, Bm, Cm, Dv, z, bias, dout, dlast, xs, dys, du, ddelta, dA, dB, dC, dD, dz,
                          dbias, D, L, N, GS_B, GS_C, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                          HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_LAST: tl.constexpr,
                          B_VARY: tl.constexpr, C_VARY: tl.constexpr, ACC: tl.constexpr, BN: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1).to(tl.int64)
    row = (b * D + d) * L
    n = tl.arange(0, BN)
    nm = n < N
    a = tl.load(A + d * N + n, mask=nm, other=0).to(ACC)
    dskip = 0.0
    if HAS_D:
        dskip = tl.load(Dv + d).to(ACC)
    # pass 1: the states, dy (and dz), dC
    x = tl.zeros((BN,), ACC)
    dc_acc = tl.zeros((BN,), ACC)
    for t in range(L):
        dt, _ = _dt(delta, bias, b, d, t, D, L, HAS_BIAS, SOFTPLUS, ACC)
        uv = tl.load(u + row + t).to(ACC)
        x = tl.exp(dt * a) * x + dt * uv * _bc(Bm, b, d, t, n, nm, D, L, GS_B, N, B_VARY, ACC)
        tl.store(xs + (row + t) * N + n, x, mask=nm)
        g = tl.load(dout + row + t).to(ACC)
        if HAS_Z:
            cv = _bc(Cm, b, d, t, n, nm, D, L, GS_C, N, C_VARY, ACC)
            y = tl.sum(tl.where(nm, cv * x, 0.0), 0) + dskip * uv
            zv = tl.load(z + row + t).to(ACC)
            sig = 1.0 / (1.0 + tl.exp(-zv))
            tl.store(dz + row + t, (g * y * sig * (1.0 + zv * (1.0 - sig))).to(dz.dtype.element_ty))
            g = g * zv * sig
        tl.store(dys + row + t, g)
        if C_VARY:
            tl.atomic_add(dC + _bc_offsets(b, d, t, n, D, L, GS_C, N, True), g * x, mask=nm)
        else:
            dc_acc += g * x
    if not C_VARY:
        tl.atomic_add(dC + d * N + n, dc_acc, mask=nm)
    # pass 2: the reverse-time recurrence
    if HAS_LAST:
        h = tl.load(dlast + (b * D + d) * N + n, mask=nm, other=0).to(ACC)
    else:
        h = tl.zeros((BN,), ACC)
    da_acc = tl.zeros((BN,), ACC)
    db_acc = tl.zeros((BN,), ACC)
    dd_acc = tl.zeros((), ACC)
    dbias_acc = tl.zeros((), ACC)
    for s in range(L):
        t = L - 1 - s
        dt, pre = _dt(delta, bias, b, d, t, D, L, HAS_BIAS, SOFTPLUS, ACC)
        uv = tl.load(u + row + t).to(ACC)
        g = tl.load(dys + row + t)
        h = h + g * _bc(Cm, b, d, t, n, nm, D, L, GS_C, N, C_VARY, ACC)
        x_prev = tl.load(xs + (row + t - 1) * N + n, mask=nm & (n * 0 + t > 0), other=0)
        ea = tl.exp(dt * a)
        bv = _bc(Bm, b, d, t, n, nm, D, L, GS_B, N, B_VARY, ACC)
        ddt = tl.sum(tl.where(nm, h * (a * ea * x_prev + bv * uv), 0.0), 0)
        da_acc += h * dt * ea * x_prev
        dbt = h * (dt * uv)
        if B_VARY:
            tl.atomic_add(dB + _bc_offsets(b, d, t, n, D, L, GS_B, N, True), dbt, mask=nm)
        else:
            db_acc += dbt
        duv = tl.sum(tl.where(nm, h * bv, 0.0), 0) * dt + dskip * g
        dd_acc += g * uv
        if SOFTPLUS:
            ddt = ddt / (1.0 + tl.exp(-pre))
        dbias_acc += ddt
        tl.store(du + row + t, duv.to(du.dtype.element_ty))
        tl.store(ddelta + row + t, ddt.to(ddelta.dtype.element_ty))
        h = h * ea
    tl.atomic_add(dA + d * N + n, da_acc, mask=nm)
    if not B_VARY:
        tl.atomic_add(dB + d * N + n, db_acc, mask=nm)
    if HAS_D:
        tl.atomic_add(dD + d, dd_acc)
    if HAS_BIAS:
        tl.atomic_add(dbias + d, dbias_acc)


def _acc(dtype):
    return (tl.float64, np.float64) if np.dtype(dtype) == np.float64 else (tl.float32, np.float32)


def _group_size(M: CudaArray, d: int) -> int:
    return d // M.shape[1] if M.ndim == 4 else 1


def _prep(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    c = [None if a is None else contiguous(a) for a in (u, delta, A, B, C, D, z, delta_bias)]
    u_ = c[0]
    meta = {"HAS_D": D is not None, "HAS_Z": z is not None, "HAS_BIAS": delta_bias is not None,
            "SOFTPLUS": bool(delta_softplus), "B_VARY": B.ndim == 4, "C_VARY": C.ndim == 4, "ACC": _acc(u.dtype)[0],
            "BN": max(16, triton.next_power_of_2(A.shape[1]))}
    dummies = [a if a is not None else u_ for a in c]
    return dummies, meta


def selective_scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """(out (Bt, D, L), last_state (Bt, D, N))."""
    bt, d, length = u.shape
    n = A.shape[1]
    out = CudaArray.empty((bt, d, length), u.dtype)
    last = full((bt, d, n), 0, u.dtype)
    if bt and d:
        arrays, meta = _prep(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        _scan_forward_kernel[(bt, d)](*arrays, out, last, d, length, n, _group_size(B, d), _group_size(C, d), **meta)
    return out, last


def selective_scan_backward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, dout, dlast):
    """(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias); None for the absent optional inputs."""
    bt, d, length = u.shape
    n = A.shape[1]
    acc_np = _acc(u.dtype)[1]
    du, ddelta = CudaArray.empty(u.shape, u.dtype), CudaArray.empty(delta.shape, delta.dtype)
    dA, dB, dC = (full(M.shape, 0, acc_np) for M in (A, B, C))
    dD = full(D.shape, 0, acc_np) if D is not None else None
    dbias = full(delta_bias.shape, 0, acc_np) if delta_bias is not None else None
    dz = CudaArray.empty(z.shape, z.dtype) if z is not None else None
    if bt and d and length:
        xs = CudaArray.empty((bt, d, length, n), acc_np)
        dys = CudaArray.empty((bt, d, length), acc_np)
        arrays, meta = _prep(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        outs = [du, ddelta, dA, dB, dC, dD if dD is not None else dA, dz if dz is not None else du,
                dbias if dbias is not None else dA]
        _scan_backward_kernel[(bt, d)](*arrays, contiguous(dout), contiguous(dlast) if dlast is not None else u,
                                       xs, dys, *outs, d, length, n, _group_size(B, d), _group_size(C, d),
                                       HAS_LAST=dlast is not None, **meta)
    elif length == 0:
        du, ddelta = full(u.shape, 0, u.dtype), full(delta.shape, 0, delta.dtype)
        dz = full(z.shape, 0, z.dtype) if z is not None else None

    def fin(g, like):
        return None if g is None else (g if g.dtype == like.dtype else cast(g, like.dtype))

    return (du, ddelta, fin(dA, A), fin(dB, B), fin(dC, C), fin(dD, D), dz, fin(dbias, delta_bias))
