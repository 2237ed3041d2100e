"""Triton kernels: the selective scan (Mamba's S6 recurrence) for the cuda device, chunked over time.

    dt_t = softplus(delta_t + bias) (or delta_t + bias);  x_t = exp(dt_t A) x_{t-1} + dt_t B_t u_t
    y_t = C_t . x_t + D u_t;  out_t = y_t silu(z_t)                      (x: N states per channel)

One program per (batch, channel) walks time in chunks of TC steps. A chunk is a (TC, N) tile in
registers: e_t = exp(dt_t A) and dt_t u_t B_t, turned into every state of the chunk by a parallel
prefix scan of the linear recurrence (tl.associative_scan with (a1, b1) o (a2, b2) = (a1 a2,
a2 b1 + b2)), x_t = P_t x_carry + X_t, and the chunk's last state is carried into the next chunk.
Any length works (rows past L are the identity (1, 0)).
Backward, with h_t = dL/dx_t = exp(dt_{t+1} A) h_{t+1} + dy_t C_t (h_L = dL/dlast_state):
    1. a forward pass over the chunks keeps each chunk's incoming state (a (Bt, D, chunks, N)
       scratch), dy = dout silu(z) (and dz);
    2. the chunks in reverse: the states x_{t-1} again (a scan of the inputs shifted by one step,
       from the kept incoming state), h by a reverse scan carried backwards between chunks, then
       ddt = sum_n h (A e x_{t-1} + B u), du = dt sum_n h B + D dy, dA += h dt e x_{t-1},
       dB_t += h dt u, dC_t += dy x_t, dD and ddelta_bias.
Sums over channels and batches (dA, dB, dC, dD, ddelta_bias) meet in atomic adds into float32
(float64) buffers. float32 computes in float32, float64 in float64. B and C are (D, N) or
(Bt, G, N, L).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_scan.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from .creation import cast, contiguous, full

__all__ = ["selective_scan_backward", "selective_scan_forward"]

TC = 32  # time steps per chunk


@triton.jit
def _combine(a1, b1, a2, b2):
    """x -> a2 (a1 x + b1) + b2: two steps of x_t = a_t x_{t-1} + b_t as one."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _dt(delta, bias, row, d, t, tm, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, ACC: tl.constexpr):
    """(dt, the pre-activation) at times t (a (TC,) block) of row (b, d); 0 where tm is False."""
    pre = tl.load(delta + row + t, mask=tm, other=0).to(ACC)
    if HAS_BIAS:
        pre += tl.load(bias + d).to(ACC)
    dt = pre
    if SOFTPLUS:
        e = tl.exp(tl.minimum(pre, 20.0))
        u1 = 1.0 + e
        lp = tl.where(u1 == 1.0, e, tl.log(u1) * e / (u1 - 1.0))  # log1p(e)
        dt = tl.where(pre > 20.0, pre, lp)
    return tl.where(tm, dt, 0.0), pre


@triton.jit
def _bc_off(b, d, t, n, D, L, GS, N, VARYING: tl.constexpr):
    """Offsets of B or C at (b, d, n, t) for a (TC, BN) tile: (D, N), or (Bt, G, N, L) with group d // GS."""
    if VARYING:
        G = D // GS
        off = ((b * G + d // GS) * N + n[None, :]) * L + t[:, None]
    else:
        off = d * N + n[None, :] + t[:, None] * 0
    return off


@triton.jit
def _step_inputs(u, delta, bias, Bm, b, d, row, t, tm, n, nm, a, D, L, GS_B, N, HAS_BIAS: tl.constexpr,
                 SOFTPLUS: tl.constexpr, B_VARY: tl.constexpr, ACC: tl.constexpr):
    """The recurrence's (e_t, dt_t u_t B_t) tiles at times t, the identity (1, 0) where tm is False,
    with dt, its pre-activation, u and B."""
    dt, pre = _dt(delta, bias, row, d, t, tm, HAS_BIAS, SOFTPLUS, ACC)
    uv = tl.load(u + row + t, mask=tm, other=0).to(ACC)
    m2 = tm[:, None] & nm[None, :]
    bv = tl.load(Bm + _bc_off(b, d, t, n, D, L, GS_B, N, B_VARY), mask=m2, other=0).to(ACC)
    e = tl.where(m2, tl.exp(dt[:, None] * a[None, :]), 1.0)
    dbu = tl.where(m2, (dt * uv)[:, None] * bv, 0.0)
    return e, dbu, dt, pre, uv, bv


@triton.jit
def _row(tile, rows, r):
    """Row r of a (TC, BN) tile (a select, so NaN elsewhere does not leak in)."""
    return tl.sum(tl.where((rows == r)[:, None], tile, 0.0), 0)


@triton.jit
def _scan_forward_kernel(u, delta, A, Bm, Cm, Dv, z, bias, out, last, carries, dys, dz, dout, D, L, N, GS_B,
                         GS_C, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                         SOFTPLUS: tl.constexpr, B_VARY: tl.constexpr, C_VARY: tl.constexpr,
                         GRAD: tl.constexpr, ACC: tl.constexpr, BN: tl.constexpr, TC: tl.constexpr):
    """out and last state; with GRAD (the backward's first pass) instead the chunks' incoming states,
    dy = dout silu(z) and dz."""
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1).to(tl.int64)
    row = (b * D + d) * L
    n = tl.arange(0, BN)
    nm = n < N
    rows = tl.arange(0, TC)
    a = tl.load(A + d * N + n, mask=nm, other=0).to(ACC)
    dskip = 0.0
    if HAS_D:
        dskip = tl.load(Dv + d).to(ACC)
    x = tl.zeros((BN,), ACC)
    n_chunks = tl.cdiv(L, TC)
    for c in range(0, n_chunks):
        t = c * TC + rows
        tm = t < L
        if GRAD:
            tl.store(carries + ((b * D + d) * n_chunks + c) * N + n, x, mask=nm)
        e, dbu, dt, pre, uv, bv = _step_inputs(u, delta, bias, Bm, b, d, row, t, tm, n, nm, a, D, L, GS_B, N,
                                               HAS_BIAS, SOFTPLUS, B_VARY, ACC)
        pa, px = tl.associative_scan((e, dbu), 0, _combine)
        xs = pa * x[None, :] + px  # (TC, BN): the states x_t of the chunk
        cv = tl.load(Cm + _bc_off(b, d, t, n, D, L, GS_C, N, C_VARY), mask=tm[:, None] & nm[None, :],
                     other=0).to(ACC)
        y = tl.sum(tl.where(nm[None, :], cv * xs, 0.0), 1)
        if HAS_D:
            y += dskip * uv
        if GRAD:
            g = tl.load(dout + row + t, mask=tm, other=0).to(ACC)
            if HAS_Z:
                zv = tl.load(z + row + t, mask=tm, other=0).to(ACC)
                sig = 1.0 / (1.0 + tl.exp(-zv))
                dzv = g * y * sig * (1.0 + zv * (1.0 - sig))
                tl.store(dz + row + t, dzv.to(dz.dtype.element_ty), mask=tm)
                g = g * zv * sig
            tl.store(dys + row + t, g, mask=tm)
        else:
            if HAS_Z:
                zv = tl.load(z + row + t, mask=tm, other=0).to(ACC)
                y = y * zv / (1.0 + tl.exp(-zv))
            tl.store(out + row + t, y.to(out.dtype.element_ty), mask=tm)
        x = _row(xs, rows, TC - 1)  # rows past L are the identity: this is x at the chunk's last valid step
    if not GRAD:
        tl.store(last + (b * D + d) * N + n, x.to(last.dtype.element_ty), mask=nm)


@triton.jit
def _scan_backward_kernel(u, delta, A, Bm, Cm, Dv, bias, dlast, carries, dys, du, ddelta, dA, dB, dC, dD,
                          dbias, D, L, N, GS_B, GS_C, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
                          SOFTPLUS: tl.constexpr, HAS_LAST: tl.constexpr, B_VARY: tl.constexpr,
                          C_VARY: tl.constexpr, ACC: tl.constexpr, BN: tl.constexpr, TC: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1).to(tl.int64)
    row = (b * D + d) * L
    n = tl.arange(0, BN)
    nm = n < N
    rows = tl.arange(0, TC)
    a = tl.load(A + d * N + n, mask=nm, other=0).to(ACC)
    dskip = 0.0
    if HAS_D:
        dskip = tl.load(Dv + d).to(ACC)
    if HAS_LAST:
        h = tl.load(dlast + (b * D + d) * N + n, mask=nm, other=0).to(ACC)
    else:
        h = tl.zeros((BN,), ACC)
    da_acc = tl.zeros((BN,), ACC)
    db_acc = tl.zeros((BN,), ACC)
    dc_acc = tl.zeros((BN,), ACC)
    dd_acc = tl.zeros((), ACC)
    dbias_acc = tl.zeros((), ACC)
    n_chunks = tl.cdiv(L, TC)
    for s in range(0, n_chunks):
        c = n_chunks - 1 - s
        t = c * TC + rows
        tm = t < L
        m2 = tm[:, None] & nm[None, :]
        x_in = tl.load(carries + ((b * D + d) * n_chunks + c) * N + n, mask=nm, other=0)  # x_{start-1}
        e, dbu, dt, pre, uv, bv = _step_inputs(u, delta, bias, Bm, b, d, row, t, tm, n, nm, a, D, L, GS_B, N,
                                               HAS_BIAS, SOFTPLUS, B_VARY, ACC)
        # x_{t-1}: the scan of the inputs one step earlier (the identity at the chunk's first row)
        tp = t - 1
        e_p, dbu_p, _, _, _, _ = _step_inputs(u, delta, bias, Bm, b, d, row, tp, tm & (rows > 0), n, nm, a, D,
                                              L, GS_B, N, HAS_BIAS, SOFTPLUS, B_VARY, ACC)
        pa, px = tl.associative_scan((e_p, dbu_p), 0, _combine)
        x_prev = pa * x_in[None, :] + px
        x_t = e * x_prev + dbu
        # h_t = exp(dt_{t+1} A) h_{t+1} + dy_t C_t: a reverse scan, h_{chunk end + 1} carried in
        tn = t + 1
        e_n, _, _, _, _, _ = _step_inputs(u, delta, bias, Bm, b, d, row, tn, tn < L, n, nm, a, D, L, GS_B, N,
                                          HAS_BIAS, SOFTPLUS, B_VARY, ACC)
        g = tl.load(dys + row + t, mask=tm, other=0)
        cv = tl.load(Cm + _bc_off(b, d, t, n, D, L, GS_C, N, C_VARY), mask=m2, other=0).to(ACC)
        dyc = tl.where(m2, g[:, None] * cv, 0.0)
        ph, hh = tl.associative_scan((e_n, dyc), 0, _combine, reverse=True)
        hs = ph * h[None, :] + hh  # (TC, BN): h_t of the chunk
        hx = tl.where(m2, hs * x_prev * e, 0.0)  # dL/d exp(dt A) times exp(dt A)
        hb = tl.where(m2, hs * bv, 0.0)
        ddt = tl.sum(hx * a[None, :], 1) + tl.sum(hb * uv[:, None], 1)
        da_acc += tl.sum(hx * dt[:, None], 0)
        dbt = tl.where(m2, hs * (dt * uv)[:, None], 0.0)
        dct = tl.where(m2, g[:, None] * x_t, 0.0)
        if B_VARY:
            tl.atomic_add(dB + _bc_off(b, d, t, n, D, L, GS_B, N, True), dbt, mask=m2)
        else:
            db_acc += tl.sum(dbt, 0)
        if C_VARY:
            tl.atomic_add(dC + _bc_off(b, d, t, n, D, L, GS_C, N, True), dct, mask=m2)
        else:
            dc_acc += tl.sum(dct, 0)
        duv = tl.sum(hb, 1) * dt + dskip * g
        dd_acc += tl.sum(tl.where(tm, g * uv, 0.0), 0)
        if SOFTPLUS:
            ddt = ddt / (1.0 + tl.exp(-pre))
        dbias_acc += tl.sum(tl.where(tm, ddt, 0.0), 0)
        tl.store(du + row + t, duv.to(du.dtype.element_ty), mask=tm)
        tl.store(ddelta + row + t, ddt.to(ddelta.dtype.element_ty), mask=tm)
        h = _row(hs, rows, 0)
    tl.atomic_add(dA + d * N + n, da_acc, mask=nm)
    if not B_VARY:
        tl.atomic_add(dB + d * N + n, db_acc, mask=nm)
    if not C_VARY:
        tl.atomic_add(dC + d * N + n, dc_acc, mask=nm)
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
    meta = {"HAS_D": D is not None, "HAS_BIAS": delta_bias is not None, "SOFTPLUS": bool(delta_softplus),
            "B_VARY": B.ndim == 4, "C_VARY": C.ndim == 4, "ACC": _acc(u.dtype)[0],
            "BN": max(16, triton.next_power_of_2(A.shape[1])), "TC": TC}
    return [a if a is not None else c[0] for a in c], meta


def selective_scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, keep_states=False):
    """(out (Bt, D, L), last_state (Bt, D, N), None): the backward keeps its own chunk carries."""
    bt, d, length = u.shape
    n = A.shape[1]
    out = CudaArray.empty((bt, d, length), u.dtype)
    last = full((bt, d, n), 0, u.dtype)
    if bt and d:
        arrays, meta = _prep(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        _scan_forward_kernel[(bt, d)](*arrays, out, last, out, out, out, out, d, length, n, _group_size(B, d),
                                      _group_size(C, d), HAS_Z=z is not None, GRAD=False, **meta)
    return out, last, None


def selective_scan_backward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, dout, dlast, states=None):
    """(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias); None for the absent optional inputs (states: None,
    from the forward above)."""
    bt, d, length = u.shape
    n = A.shape[1]
    acc_np = _acc(u.dtype)[1]
    du, ddelta = CudaArray.empty(u.shape, u.dtype), CudaArray.empty(delta.shape, delta.dtype)
    dA, dB, dC = (full(M.shape, 0, acc_np) for M in (A, B, C))
    dD = full(D.shape, 0, acc_np) if D is not None else None
    dbias = full(delta_bias.shape, 0, acc_np) if delta_bias is not None else None
    dz = CudaArray.empty(z.shape, z.dtype) if z is not None else None
    if bt and d and length:
        carries = CudaArray.empty((bt, d, triton.cdiv(length, TC), n), acc_np)
        dys = CudaArray.empty((bt, d, length), acc_np)
        arrays, meta = _prep(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        u_, delta_, A_, B_, C_, D_, z_, bias_ = arrays
        grid, gs = (bt, d), (_group_size(B, d), _group_size(C, d))
        _scan_forward_kernel[grid](*arrays, u_, u_, carries, dys, dz if dz is not None else u_,
                                   contiguous(dout), d, length, n, *gs, HAS_Z=z is not None, GRAD=True,
                                   **meta)
        last_grad = contiguous(dlast) if dlast is not None else u_
        grads = [du, ddelta, dA, dB, dC, dD if dD is not None else dA, dbias if dbias is not None else dA]
        _scan_backward_kernel[grid](u_, delta_, A_, B_, C_, D_, bias_, last_grad, carries, dys, *grads, d,
                                    length, n, *gs, HAS_LAST=dlast is not None, **meta)
    elif length == 0:
        du, ddelta = full(u.shape, 0, u.dtype), full(delta.shape, 0, delta.dtype)
        dz = full(z.shape, 0, z.dtype) if z is not None else None

    def fin(g, like):
        return None if g is None else (g if g.dtype == like.dtype else cast(g, like.dtype))

    return (du, ddelta, fin(dA, A), fin(dB, B), fin(dC, C), fin(dD, D), dz, fin(dbias, delta_bias))
