"""Triton kernels: the rnn family (one LSTM / GRU / Elman layer and direction over a whole sequence,
forward and backward) for the cuda device. Math and shapes: tinyml/ops/rnn.py and
backends/reference/rnn.py (xproj (T, B, G H) = x W_ih^T + b_ih is given; G = 4, 3 or 1).

Design: one persistent program per block of BB batch rows owns ALL hidden units of those rows and
walks the T steps itself. Rows never interact, so programs need no grid-wide barrier; inside a
program, a step's recurrent GEMM reads every unit of h, which `tl.debug_barrier()` (a CTA barrier:
global writes of the step are visible to all its threads) separates from the previous step's
writes. The alternatives cost more at the sizes recurrent layers run at: a grid-wide barrier across
hidden blocks does not exist in Triton, and one launch per step is T launches (~5 us each) per layer
and direction, more than the whole step's work for H <= 256.

    forward, step t (rows r of the block, units j in blocks of BH, K = H in blocks of BK):
        a_g[r, j] = xproj[t, r, g H + j] + sum_k h[r, k] W_hh[g H + j, k] + b_hh[g H + j]   (tl.dot)
        gates, c', h' as in ops/rnn.py; h is double-buffered (hbuf[s % 2] -> hbuf[(s + 1) % 2]).
    backward, step t in reverse: phase 1, per unit block, the gates' gradients (dx[t], and dgh, the
        recurrent pre-activation's, kept in float32 scratch) and h_prev into hp; barrier; phase 2,
        dh_prev[r, j] = direct[r, j] + sum_q dgh[t, r, q] W_hh[q, j] (direct = dh z for GRU, else 0).
    dW_hh = dgh^T hp over all T B rows and db_hh = its column sums: a second kernel, one program per
        (BM x BN) tile of dW_hh, so each sum has one owner (no atomics, deterministic).
Rows past batch_sizes[t] keep their state, get zero output and zero gradients (tl.where, so NaN in
an inactive row's garbage gates never leaks). State (h, c, dh, dc) lives in float32 scratch
(float64 for float64); 16-bit inputs compute in float32. float32 dots use IEEE precision (not tf32)
so results match the reference to float32 rounding; float64 dots are a broadcast multiply and sum.
tanh is Cephes' (an odd polynomial below 0.625, 1 - 2 / (exp(2|x|) + 1) above), exact in float32
and NaN-preserving; float64 uses 1 - e / 1 + e in float64 (libdevice is not in the interpreter).
rnn_layer_forward / rnn_layer_backward (the layer from x, W_ih, b_ih) are the Triton matmul around these.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_rnn.py tests/ops/test_rnn_input_layer.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._pointwise_common import tanh64
from .conv import _mma
from .creation import contiguous, from_host
from .matmul import linear, linear_backward

__all__ = ["rnn_backward", "rnn_forward", "rnn_layer_backward", "rnn_layer_forward"]

MODES = {"LSTM": 0, "GRU": 1, "RNN_TANH": 2, "RNN_RELU": 3}
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
SAVED = {"LSTM": 5, "GRU": 4, "RNN_TANH": 0, "RNN_RELU": 0}


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x, F64: tl.constexpr):
    if F64:
        r = tanh64(x)
    else:
        z = tl.abs(x)
        big = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)
        big = tl.where(x < 0, -big, big)
        s = x * x
        p = ((((-5.70498872745e-3 * s + 2.06390887954e-2) * s - 5.37397155531e-2) * s + 1.33314422036e-1) * s
             - 3.33332819422e-1) * s * x + x
        r = tl.where(z > 0.625, big, p)
    return r


@triton.jit
def _recurrent(h, w, g, rows, j, B, H, ACC: tl.constexpr, PREC: tl.constexpr, BB: tl.constexpr,
               BH: tl.constexpr, BK: tl.constexpr):
    """(BB, BH): sum_k h[rows, k] W_hh[g H + j, k], h a (B, H) row-major state buffer."""
    acc = tl.zeros((BB, BH), ACC)
    for k0 in range(0, H, BK):
        k = k0 + tl.arange(0, BK)
        a = tl.load(h + rows[:, None] * H + k[None, :], mask=(rows[:, None] < B) & (k[None, :] < H),
                    other=0.0)
        wt = tl.load(w + (g * H + j[None, :]) * H + k[:, None], mask=(k[:, None] < H) & (j[None, :] < H),
                     other=0.0)
        acc += _mma(a.to(ACC), wt.to(ACC), ACC, PREC)
    return acc


@triton.jit
def _pre(x, b, h, w, g, t, rows, j, m2, B, H, GH, HAS_BIAS: tl.constexpr, ACC: tl.constexpr,
         PREC: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr):
    """(xproj_g, s_g): gate g's input part and recurrent part h W_hh^T + b_hh, each (BB, BH)."""
    xg = tl.load(x + (t * B + rows[:, None]) * GH + g * H + j[None, :], mask=m2, other=0.0).to(ACC)
    s = _recurrent(h, w, g, rows, j, B, H, ACC, PREC, BB, BH, BK)
    if HAS_BIAS:
        s += tl.load(b + g * H + j, mask=j < H, other=0.0).to(ACC)[None, :]
    return xg, s


@triton.jit
def _forward_kernel(x, h0, c0, w, b, sizes, y, hn, cn, saved, hbuf, cbuf, T, B, H, GH, SH, MODE: tl.constexpr,
                    REVERSE: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr, PREC: tl.constexpr,
                    BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    F64: tl.constexpr = ACC == tl.float64
    for j0 in range(0, H, BH):  # the state buffers start from h0 (and c0)
        j = j0 + tl.arange(0, BH)
        m2 = (rows[:, None] < B) & (j[None, :] < H)
        off = rows[:, None] * H + j[None, :]
        tl.store(hbuf + off, tl.load(h0 + off, mask=m2, other=0.0).to(ACC), mask=m2)
        if MODE == 0:
            tl.store(cbuf + off, tl.load(c0 + off, mask=m2, other=0.0).to(ACC), mask=m2)
    tl.debug_barrier()
    for s in range(0, T):
        t = T - 1 - s if REVERSE else s
        n = tl.load(sizes + t + 1)
        hc = hbuf + (s % 2) * B * H
        hx = hbuf + ((s + 1) % 2) * B * H
        for j0 in range(0, H, BH):
            j = j0 + tl.arange(0, BH)
            m2 = (rows[:, None] < B) & (j[None, :] < H)
            act = (rows[:, None] < n) & m2
            off = rows[:, None] * H + j[None, :]
            row_y = (t * B + rows[:, None]) * H + j[None, :]
            row_s = (t * B + rows[:, None]) * SH + j[None, :]
            h_old = tl.load(hc + off, mask=m2, other=0.0)
            if MODE == 0:
                xi, si = _pre(x, b, hc, w, 0, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                xf, sf = _pre(x, b, hc, w, 1, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                xg, sg = _pre(x, b, hc, w, 2, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                xo, so = _pre(x, b, hc, w, 3, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                i = _sigmoid(xi + si)
                f = _sigmoid(xf + sf)
                g = _tanh(xg + sg, F64)
                o = _sigmoid(xo + so)
                c_old = tl.load(cbuf + off, mask=m2, other=0.0)
                c_new = f * c_old + i * g
                h_new = o * _tanh(c_new, F64)
                tl.store(cbuf + off, tl.where(act, c_new, c_old), mask=m2)
                tl.store(saved + row_s, tl.where(act, i, 0.0).to(saved.dtype.element_ty), mask=m2)
                tl.store(saved + row_s + H, tl.where(act, f, 0.0).to(saved.dtype.element_ty), mask=m2)
                tl.store(saved + row_s + 2 * H, tl.where(act, g, 0.0).to(saved.dtype.element_ty), mask=m2)
                tl.store(saved + row_s + 3 * H, tl.where(act, o, 0.0).to(saved.dtype.element_ty), mask=m2)
                tl.store(saved + row_s + 4 * H, tl.where(act, c_new, 0.0).to(saved.dtype.element_ty), mask=m2)
            elif MODE == 1:
                xr, sr = _pre(x, b, hc, w, 0, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                xz, sz = _pre(x, b, hc, w, 1, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                xn, sn = _pre(x, b, hc, w, 2, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                r = _sigmoid(xr + sr)
                z = _sigmoid(xz + sz)
                nn = _tanh(xn + r * sn, F64)
                h_new = (1.0 - z) * nn + z * h_old
                tl.store(saved + row_s, tl.where(act, r, 0.0).to(saved.dtype.element_ty), mask=m2)
                tl.store(saved + row_s + H, tl.where(act, z, 0.0).to(saved.dtype.element_ty), mask=m2)
                tl.store(saved + row_s + 2 * H, tl.where(act, nn, 0.0).to(saved.dtype.element_ty), mask=m2)
                tl.store(saved + row_s + 3 * H, tl.where(act, sn, 0.0).to(saved.dtype.element_ty), mask=m2)
            else:
                xa, sa = _pre(x, b, hc, w, 0, t, rows, j, m2, B, H, GH, HAS_BIAS, ACC, PREC, BB, BH, BK)
                a = xa + sa
                if MODE == 2:
                    h_new = _tanh(a, F64)
                else:  # relu that keeps NaN, as torch's
                    h_new = tl.where((a > 0) | (a != a), a, 0.0)
            tl.store(hx + off, tl.where(act, h_new, h_old), mask=m2)
            tl.store(y + row_y, tl.where(act, h_new, 0.0).to(y.dtype.element_ty), mask=m2)
        tl.debug_barrier()
    for j0 in range(0, H, BH):
        j = j0 + tl.arange(0, BH)
        m2 = (rows[:, None] < B) & (j[None, :] < H)
        off = rows[:, None] * H + j[None, :]
        tl.store(hn + off, tl.load(hbuf + (T % 2) * B * H + off, mask=m2).to(hn.dtype.element_ty), mask=m2)
        if MODE == 0:
            tl.store(cn + off, tl.load(cbuf + off, mask=m2).to(cn.dtype.element_ty), mask=m2)


@triton.jit
def _store_grad(dx, dgh, off, vx, vh, act, m2):
    """One gate's gradient: into dx (the input's dtype) and into the float32/64 dgh scratch."""
    tl.store(dx + off, tl.where(act, vx, 0.0).to(dx.dtype.element_ty), mask=m2)
    tl.store(dgh + off, tl.where(act, vh, 0.0), mask=m2)


@triton.jit
def _backward_kernel(dy, h0, c0, w, sizes, y, saved, dx, dgh, hp, dh, dc, dhn, dcn, dh0, dc0, T, B, H, GH, SH,
                     MODE: tl.constexpr, REVERSE: tl.constexpr, HAS_DCN: tl.constexpr, ACC: tl.constexpr,
                     PREC: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    F64: tl.constexpr = ACC == tl.float64
    for j0 in range(0, H, BH):  # dh, dc start from dh_n, dc_n
        j = j0 + tl.arange(0, BH)
        m2 = (rows[:, None] < B) & (j[None, :] < H)
        off = rows[:, None] * H + j[None, :]
        tl.store(dh + off, tl.load(dhn + off, mask=m2, other=0.0).to(ACC), mask=m2)
        if MODE == 0:
            if HAS_DCN:
                tl.store(dc + off, tl.load(dcn + off, mask=m2, other=0.0).to(ACC), mask=m2)
            else:
                tl.store(dc + off, tl.zeros((BB, BH), ACC), mask=m2)
    tl.debug_barrier()
    for u in range(0, T):
        t = u if REVERSE else T - 1 - u
        p = t + 1 if REVERSE else t - 1  # the step before t in the forward's order (-1 or T: none)
        n = tl.load(sizes + t + 1)
        n_prev = tl.load(sizes + p + 1)  # sizes is padded with a 0 at both ends
        for j0 in range(0, H, BH):  # phase 1: the gates' gradients of units j
            j = j0 + tl.arange(0, BH)
            m2 = (rows[:, None] < B) & (j[None, :] < H)
            act = (rows[:, None] < n) & m2
            prev = (rows[:, None] < n_prev) & m2
            off = rows[:, None] * H + j[None, :]
            row_y = (t * B + rows[:, None]) * H + j[None, :]
            row_g = (t * B + rows[:, None]) * GH + j[None, :]
            row_s = (t * B + rows[:, None]) * SH + j[None, :]
            dh_old = tl.load(dh + off, mask=m2, other=0.0)
            d = dh_old + tl.load(dy + row_y, mask=m2, other=0.0).to(ACC)
            prev_y = (p * B + rows[:, None]) * H + j[None, :]
            h_prev = tl.where(prev, tl.load(y + prev_y, mask=prev, other=0.0),
                              tl.load(h0 + off, mask=m2, other=0.0)).to(ACC)
            direct = tl.zeros((BB, BH), ACC)
            if MODE == 0:
                i = tl.load(saved + row_s, mask=m2, other=0.0).to(ACC)
                f = tl.load(saved + row_s + H, mask=m2, other=0.0).to(ACC)
                g = tl.load(saved + row_s + 2 * H, mask=m2, other=0.0).to(ACC)
                o = tl.load(saved + row_s + 3 * H, mask=m2, other=0.0).to(ACC)
                tc = _tanh(tl.load(saved + row_s + 4 * H, mask=m2, other=0.0).to(ACC), F64)
                prev_c = (p * B + rows[:, None]) * SH + 4 * H + j[None, :]
                c_prev = tl.where(prev, tl.load(saved + prev_c, mask=prev, other=0.0),
                                  tl.load(c0 + off, mask=m2, other=0.0)).to(ACC)
                dc_old = tl.load(dc + off, mask=m2, other=0.0)
                dct = dc_old + d * o * (1.0 - tc * tc)
                gi = dct * g * i * (1.0 - i)
                gf = dct * c_prev * f * (1.0 - f)
                gg = dct * i * (1.0 - g * g)
                go = d * tc * o * (1.0 - o)
                _store_grad(dx, dgh, row_g, gi, gi, act, m2)
                _store_grad(dx, dgh, row_g + H, gf, gf, act, m2)
                _store_grad(dx, dgh, row_g + 2 * H, gg, gg, act, m2)
                _store_grad(dx, dgh, row_g + 3 * H, go, go, act, m2)
                tl.store(dc + off, tl.where(act, dct * f, dc_old), mask=m2)
            elif MODE == 1:
                r = tl.load(saved + row_s, mask=m2, other=0.0).to(ACC)
                z = tl.load(saved + row_s + H, mask=m2, other=0.0).to(ACC)
                nn = tl.load(saved + row_s + 2 * H, mask=m2, other=0.0).to(ACC)
                sn = tl.load(saved + row_s + 3 * H, mask=m2, other=0.0).to(ACC)
                dn = d * (1.0 - z) * (1.0 - nn * nn)
                dr = dn * sn * r * (1.0 - r)
                dz = d * (h_prev - nn) * z * (1.0 - z)
                _store_grad(dx, dgh, row_g, dr, dr, act, m2)
                _store_grad(dx, dgh, row_g + H, dz, dz, act, m2)
                _store_grad(dx, dgh, row_g + 2 * H, dn, dn * r, act, m2)
                direct = d * z
            else:
                h = tl.load(y + row_y, mask=m2, other=0.0).to(ACC)
                if MODE == 2:
                    ga = d * (1.0 - h * h)
                else:
                    ga = tl.where(h > 0, d, 0.0)
                _store_grad(dx, dgh, row_g, ga, ga, act, m2)
            tl.store(dh + off, tl.where(act, direct, dh_old), mask=m2)
            tl.store(hp + row_y, tl.where(act, h_prev, 0.0), mask=m2)
        tl.debug_barrier()
        for j0 in range(0, H, BH):  # phase 2: dh_prev[:, j] += dgh_t W_hh[:, j] for the active rows
            j = j0 + tl.arange(0, BH)
            act = (rows[:, None] < n) & (rows[:, None] < B) & (j[None, :] < H)
            off = rows[:, None] * H + j[None, :]
            acc = tl.load(dh + off, mask=act, other=0.0)
            for q0 in range(0, GH, BK):
                q = q0 + tl.arange(0, BK)
                a = tl.load(dgh + (t * B + rows[:, None]) * GH + q[None, :],
                            mask=(rows[:, None] < n) & (rows[:, None] < B) & (q[None, :] < GH), other=0.0)
                wt = tl.load(w + q[:, None] * H + j[None, :], mask=(q[:, None] < GH) & (j[None, :] < H),
                             other=0.0)
                acc += _mma(a, wt.to(ACC), ACC, PREC)
            tl.store(dh + off, acc, mask=act)
        tl.debug_barrier()
    for j0 in range(0, H, BH):
        j = j0 + tl.arange(0, BH)
        m2 = (rows[:, None] < B) & (j[None, :] < H)
        off = rows[:, None] * H + j[None, :]
        tl.store(dh0 + off, tl.load(dh + off, mask=m2).to(dh0.dtype.element_ty), mask=m2)
        if MODE == 0:
            tl.store(dc0 + off, tl.load(dc + off, mask=m2).to(dc0.dtype.element_ty), mask=m2)


@triton.jit
def _dw_kernel(dgh, hp, dw, db, R, GH, H, HAS_BIAS: tl.constexpr, ACC: tl.constexpr, PREC: tl.constexpr,
               BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """dW_hh[q, k] = sum_r dgh[r, q] hp[r, k] over the R = T B rows; db_hh[q] = sum_r dgh[r, q]."""
    q = tl.program_id(0) * BM + tl.arange(0, BM)
    k = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), ACC)
    col = tl.zeros((BM,), ACC)
    for r0 in range(0, R, BK):
        r = (r0 + tl.arange(0, BK)).to(tl.int64)
        a = tl.load(dgh + r[None, :] * GH + q[:, None], mask=(r[None, :] < R) & (q[:, None] < GH), other=0.0)
        hb = tl.load(hp + r[:, None] * H + k[None, :], mask=(r[:, None] < R) & (k[None, :] < H), other=0.0)
        acc += _mma(a, hb, ACC, PREC)
        col += tl.sum(a, 1)
    tl.store(dw + q[:, None] * H + k[None, :], acc.to(dw.dtype.element_ty),
             mask=(q[:, None] < GH) & (k[None, :] < H))
    if HAS_BIAS:
        if tl.program_id(1) == 0:
            tl.store(db + q, col.to(db.dtype.element_ty), mask=q < GH)


def _compute(x: CudaArray):
    """(accumulator dtype, dot precision, scratch numpy dtype) for inputs of x's dtype."""
    if x.dtype == np.float64:
        return tl.float64, "f64", np.float64
    return tl.float32, "ieee", np.float32


def _blocks(H: int, f64: bool):
    """(BB, BH, BK): tl.dot needs every dim >= 16; float64's broadcast product wants smaller tiles."""
    p = max(16, triton.next_power_of_2(max(H, 1)))
    return 16, min(p, 32 if f64 else 64), min(p, 16 if f64 else 32)


def _sizes(batch_sizes, T: int, B: int) -> CudaArray:
    """The active-row counts with a 0 before step 0 and after step T-1 (so step t's is at t + 1)."""
    sizes = [B] * T if batch_sizes is None else [int(s) for s in batch_sizes]
    return from_host(np.array([0] + sizes + [0], dtype=np.int32))


def _check_float(*arrays):
    for a in arrays:
        if a is not None and np.dtype(a.dtype).kind != "f":
            raise TypeError(f"rnn (triton): expected floating-point arrays, got {a.dtype}")


def rnn_forward(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse):
    _check_float(xproj, h0, c0, w_hh, b_hh)
    xproj, h0, w_hh = contiguous(xproj), contiguous(h0), contiguous(w_hh)
    c0 = None if c0 is None else contiguous(c0)
    b_hh = None if b_hh is None else contiguous(b_hh)
    T, B, GH = xproj.shape
    H = GH // GATES[mode]
    acc, prec, sd = _compute(xproj)
    dt = xproj.dtype
    y, hn, saved = CudaArray.empty((T, B, H), dt), CudaArray.empty((B, H), dt), CudaArray.empty(
        (T, B, SAVED[mode] * H), dt)
    cn = CudaArray.empty((B, H), dt) if mode == "LSTM" else None
    if B and H:
        hbuf, cbuf = CudaArray.empty((2, B, H), sd), CudaArray.empty((B, H), sd)
        BB, BH, BK = _blocks(H, sd == np.float64)
        _forward_kernel[(triton.cdiv(B, BB),)](
            xproj, h0, c0 if c0 is not None else h0, w_hh, b_hh if b_hh is not None else w_hh,
            _sizes(batch_sizes, T, B), y, hn, cn if cn is not None else hn, saved, hbuf, cbuf, T, B, H, GH,
            SAVED[mode] * H, MODE=MODES[mode], REVERSE=bool(reverse), HAS_BIAS=b_hh is not None, ACC=acc,
            PREC=prec, BB=BB, BH=BH, BK=BK)
    return y, hn, cn, saved


def rnn_backward(mode, dy, dh_n, dc_n, h0, c0, w_hh, b_hh, batch_sizes, reverse, y, saved):
    _check_float(dy, dh_n, dc_n, h0, c0, w_hh, b_hh, y, saved)
    dy, dh_n, h0, w_hh, y, saved = (contiguous(a) for a in (dy, dh_n, h0, w_hh, y, saved))
    dc_n = None if dc_n is None else contiguous(dc_n)
    c0 = None if c0 is None else contiguous(c0)
    T, B, H = dy.shape
    GH = GATES[mode] * H
    acc, prec, sd = _compute(dy)
    dt = dy.dtype
    dx, dh0 = CudaArray.empty((T, B, GH), dt), CudaArray.empty((B, H), dt)
    dc0 = CudaArray.empty((B, H), dt) if mode == "LSTM" else None
    dw, db = CudaArray.empty((GH, H), w_hh.dtype), CudaArray.empty((GH,), w_hh.dtype)
    dgh, hp = CudaArray.empty((T, B, GH), sd), CudaArray.empty((T, B, H), sd)
    f64 = sd == np.float64
    if B and H:
        dh, dc = CudaArray.empty((B, H), sd), CudaArray.empty((B, H), sd)
        BB, BH, BK = _blocks(H, f64)
        _backward_kernel[(triton.cdiv(B, BB),)](
            dy, h0, c0 if c0 is not None else h0, w_hh, _sizes(batch_sizes, T, B), y, saved, dx, dgh, hp, dh,
            dc, dh_n, dc_n if dc_n is not None else dh_n, dh0, dc0 if dc0 is not None else dh0, T, B, H, GH,
            SAVED[mode] * H, MODE=MODES[mode], REVERSE=bool(reverse), HAS_DCN=dc_n is not None, ACC=acc,
            PREC=prec, BB=BB, BH=BH, BK=BK)
    if GH and H:
        BM, BN, BK = (32, 32, 16) if f64 else (64, 64, 32)
        _dw_kernel[(triton.cdiv(GH, BM), triton.cdiv(H, BN))](
            dgh, hp, dw, db, T * B, GH, H, HAS_BIAS=b_hh is not None, ACC=acc, PREC=prec, BM=BM, BN=BN, BK=BK)
    return dx, dh0, dc0, dw, db if b_hh is not None else None


def _rows(a: CudaArray) -> CudaArray:  # (T, B, n) contiguous -> its (T B, n) rows
    return a.as_strided((a.shape[0] * a.shape[1], a.shape[2]), (a.shape[2], 1))


def rnn_layer_forward(mode, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse):
    """rnn_forward after the input projection xproj = x W_ih^T + b_ih, one GEMM over the T B rows."""
    x, T, B, GH = contiguous(x), x.shape[0], x.shape[1], w_ih.shape[0]
    xproj = contiguous(linear(_rows(x), w_ih, b_ih)).as_strided((T, B, GH), (B * GH, GH, 1))
    return rnn_forward(mode, xproj, h0, c0, w_hh, b_hh, batch_sizes, reverse)


def rnn_layer_backward(mode, dy, dh_n, dc_n, x, w_ih, b_ih, h0, c0, w_hh, b_hh, batch_sizes, reverse, y,
                       saved):
    """rnn_backward, then dx = dxproj W_ih, dW_ih = dxproj^T x, db_ih = the column sums of dxproj."""
    dxproj, dh0, dc0, dw, db = rnn_backward(mode, dy, dh_n, dc_n, h0, c0, w_hh, b_hh, batch_sizes, reverse, y,
                                            saved)
    x, (T, B, n_in) = contiguous(x), x.shape
    g = _rows(dxproj)
    dx, dw_ih, db_ih = linear_backward(g, _rows(x), w_ih, True, True, b_ih is not None)
    return contiguous(dx).as_strided((T, B, n_in), (B * n_in, n_in, 1)), dw_ih, db_ih, dh0, dc0, dw, db
