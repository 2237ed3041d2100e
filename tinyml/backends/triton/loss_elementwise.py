"""Triton kernels: the losses computed per element (or per row from one picked class), beside the
fused cross_entropy (loss.py), for the cuda device. Each returns the per-element (per-row for nll)
loss; the op applies the reduction.

    l1: |d|   smooth_l1: 0.5 d^2 / beta if |d| < beta else |d| - beta / 2
    huber: 0.5 d^2 if |d| < delta else delta (|d| - delta / 2)            (d = x - y)
    bce_with_logits: (1 - y) x + (1 + (pw - 1) y) softplus(-x)  (softplus stable for both signs)
    binary_cross_entropy: -(y max(log x, -100) + (1 - y) max(log(1 - x), -100))
    kl_div: y (log y - x), or e^y (y - x) with log_target
    nll_loss: loss_i = -w[t_i] x[i, t_i] and w_t,i (0 where t_i == ignore_index); backward writes
              one element per row into zeros
One strided elementwise kernel (four inputs, up to three outputs, the loss a constexpr string),
float32 for 16-bit floats. Scalar parameters (beta, delta) travel as 1-element arrays of the
compute dtype. binary_cross_entropy's range check and nll_loss's target check raise as the
reference does: each reads one flag back to the host (a sync).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_loss.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._pointwise_common import launch
from ._rows import load_up
from ._strided import BLOCK, grid, strided_offsets
from ._view import expand
from .creation import contiguous, full, to_host
from .reduce_stats import any as _any

__all__ = [
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_forward",
    "huber_loss_backward",
    "huber_loss_forward",
    "kl_div_backward",
    "kl_div_forward",
    "l1_loss_backward",
    "l1_loss_forward",
    "nll_loss_backward",
    "nll_loss_forward",
    "smooth_l1_loss_backward",
    "smooth_l1_loss_forward",
]


@triton.jit
def _sign(d):
    return tl.where(d > 0, 1.0, tl.where(d < 0, -1.0, 0.0))


@triton.jit
def _softplus_neg(x):
    """log(1 + e^-x), stable for both signs (log1p by Kahan's form)."""
    e = tl.exp(-tl.abs(x))
    u = 1.0 + e
    return tl.maximum(-x, 0.0) + tl.where(u == 1.0, e, tl.log(u) * e / (u - 1.0))


@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _loss_kernel(a, b, c, d, o1, o2, o3, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3,
                 d0, d1, d2, d3, OP: tl.constexpr, FLAG: tl.constexpr, BLOCK: tl.constexpr):
    """a = x, b = y, c = dl (backward) or pos_weight, d = the scalar parameter or pos_weight."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = load_up(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), m, 0.5)
    y = load_up(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), m, 0.5)
    g = load_up(c + strided_offsets(i, s1, s2, s3, c0, c1, c2, c3), m, 0)
    p = load_up(d + strided_offsets(i, s1, s2, s3, d0, d1, d2, d3), m, 1)
    diff = x - y
    ad = tl.abs(diff)
    if OP == "l1":
        tl.store(o1 + i, ad.to(o1.dtype.element_ty), mask=m)
    elif OP == "l1_bwd":
        tl.store(o1 + i, (_sign(diff) * g).to(o1.dtype.element_ty), mask=m)
    elif OP == "smooth_l1":  # FLAG: beta == 0
        r = tl.where(ad < p, 0.5 * diff * diff / p, ad - 0.5 * p)
        if FLAG:
            r = ad
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    elif OP == "smooth_l1_bwd":
        r = tl.where(ad < p, diff / tl.where(p == 0, 1.0, p), _sign(diff))
        if FLAG:
            r = _sign(diff)
        tl.store(o1 + i, (r * g).to(o1.dtype.element_ty), mask=m)
    elif OP == "huber":
        r = tl.where(ad < p, 0.5 * diff * diff, p * (ad - 0.5 * p))
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    elif OP == "huber_bwd":
        tl.store(o1 + i, (tl.where(ad < p, diff, p * _sign(diff)) * g).to(o1.dtype.element_ty), mask=m)
    elif OP == "bcel":  # FLAG: has pos_weight (in d)
        coef = 1.0
        if FLAG:
            coef = 1.0 + (p - 1.0) * y
        tl.store(o1 + i, ((1.0 - y) * x + coef * _softplus_neg(x)).to(o1.dtype.element_ty), mask=m)
    elif OP == "bcel_bwd":
        if FLAG:
            sp = _softplus_neg(x)
            dx = (1.0 - y) - (1.0 + (p - 1.0) * y) * _sigmoid(-x)
            dy = -x + (p - 1.0) * sp
            tl.store(o3 + i, (g * y * sp).to(o3.dtype.element_ty), mask=m)
        else:
            dx = _sigmoid(x) - y
            dy = -x
        tl.store(o1 + i, (g * dx).to(o1.dtype.element_ty), mask=m)
        tl.store(o2 + i, (g * dy).to(o2.dtype.element_ty), mask=m)
    elif OP == "bce":  # o2: a flag where x is outside [0, 1] or NaN
        log_x = tl.maximum(tl.log(x), -100.0)
        log_1mx = tl.maximum(tl.log(1.0 - x), -100.0)
        tl.store(o1 + i, (-(y * log_x + (1.0 - y) * log_1mx)).to(o1.dtype.element_ty), mask=m)
        tl.store(o2 + i, ((x < 0) | (x > 1) | (x != x)).to(o2.dtype.element_ty), mask=m)  # noqa: PLR0124 (x != x: NaN test)
    elif OP == "bce_bwd":
        dx = g * (x - y) / tl.maximum(x * (1.0 - x), 1e-12)
        dy = g * (tl.maximum(tl.log(1.0 - x), -100.0) - tl.maximum(tl.log(x), -100.0))
        tl.store(o1 + i, dx.to(o1.dtype.element_ty), mask=m)
        tl.store(o2 + i, dy.to(o2.dtype.element_ty), mask=m)
    elif OP == "kl":  # FLAG: log_target
        if FLAG:
            r = tl.exp(y) * (y - x)
        else:
            r = tl.where(y > 0, y * (tl.log(tl.where(y > 0, y, 1.0)) - x),
                         tl.where(y == 0, 0.0, float("nan")))
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    else:  # kl_bwd
        if FLAG:
            e = tl.exp(y)
            dx = -e
            dt = e * (y - x + 1.0)
        else:
            dx = -y
            dt = tl.where(y > 0, tl.log(tl.where(y > 0, y, 1.0)) + 1.0 - x, 0.0)
        tl.store(o1 + i, (g * dx).to(o1.dtype.element_ty), mask=m)
        tl.store(o2 + i, (g * dt).to(o2.dtype.element_ty), mask=m)


def _compute_dtype(dtype) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _run(op: str, x: CudaArray, y: CudaArray, c=None, d=None, outs=None, flag=False) -> list[CudaArray]:
    outs = outs or [CudaArray.empty(x.shape, x.dtype)]
    shape = x.shape

    def as_arr(v):
        if v is None:
            return x
        if isinstance(v, CudaArray):
            return v if v.shape == shape else expand(v, shape)
        return expand(full((1,), v, _compute_dtype(x.dtype)), shape)

    ins = [x, as_arr(y), as_arr(c), as_arr(d)]
    launch(_loss_kernel, ins, outs + [outs[0]] * (3 - len(outs)), OP=op, FLAG=bool(flag))
    return outs


def l1_loss_forward(x, y):
    return _run("l1", x, y)[0]


def l1_loss_backward(x, y, dl):
    return _run("l1_bwd", x, y, dl)[0]


def smooth_l1_loss_forward(x, y, beta):
    return _run("smooth_l1", x, y, None, float(beta), flag=beta == 0)[0]


def smooth_l1_loss_backward(x, y, dl, beta):
    return _run("smooth_l1_bwd", x, y, dl, float(beta), flag=beta == 0)[0]


def huber_loss_forward(x, y, delta):
    return _run("huber", x, y, None, float(delta))[0]


def huber_loss_backward(x, y, dl, delta):
    return _run("huber_bwd", x, y, dl, float(delta))[0]


def bce_with_logits_forward(x, y, pos_weight):
    return _run("bcel", x, y, None, pos_weight, flag=pos_weight is not None)[0]


def bce_with_logits_backward(x, y, pos_weight, dl):
    """-> (dx, dy, dpos_weight or None)."""
    outs = [CudaArray.empty(x.shape, x.dtype), CudaArray.empty(y.shape, y.dtype)]
    if pos_weight is not None:
        outs.append(CudaArray.empty(x.shape, pos_weight.dtype))
    _run("bcel_bwd", x, y, dl, pos_weight, outs=outs, flag=pos_weight is not None)
    return outs[0], outs[1], (outs[2] if pos_weight is not None else None)


def binary_cross_entropy_forward(x, y):
    outs = [CudaArray.empty(x.shape, x.dtype), CudaArray.empty(x.shape, np.bool_)]
    loss, bad = _run("bce", x, y, outs=outs)
    if x.numel() and bool(to_host(_any(bad, tuple(range(bad.ndim)), False)).reshape(-1)[0]):
        xs = to_host(x).astype(np.float32)
        found = xs[(xs < 0) | (xs > 1) | np.isnan(xs)][0]
        raise RuntimeError(f"all elements of input should be between 0 and 1 (found {float(found)!r})")
    return loss


def binary_cross_entropy_backward(x, y, dl):
    outs = [CudaArray.empty(x.shape, x.dtype), CudaArray.empty(y.shape, y.dtype)]
    _run("bce_bwd", x, y, dl, outs=outs)
    return outs[0], outs[1]


def kl_div_forward(x, t, log_target):
    return _run("kl", x, t, flag=log_target)[0]


def kl_div_backward(x, t, dl, log_target):
    outs = [CudaArray.empty(x.shape, x.dtype), CudaArray.empty(t.shape, t.dtype)]
    _run("kl_bwd", x, t, dl, outs=outs, flag=log_target)
    return outs[0], outs[1]


@triton.jit
def _nll_kernel(x, t, w, loss, w_t, bad, n, C, sx0, sx1, ignore_index, HAS_W: tl.constexpr,
                BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    tv = tl.load(t + i, mask=m, other=0).to(tl.int64)
    valid = tv != ignore_index
    oob = valid & ((tv < 0) | (tv >= C))
    tc = tl.where(valid & ~oob, tv, 0)
    if HAS_W:
        wv = load_up(w + tc, m, 0)
    else:
        wv = tl.full((BLOCK,), 1.0, tl.float32)
    wv = tl.where(valid, wv, 0.0)
    xv = load_up(x + i * sx0 + tc * sx1, m, 0)
    tl.store(loss + i, (-xv * wv).to(loss.dtype.element_ty), mask=m)
    tl.store(w_t + i, wv.to(w_t.dtype.element_ty), mask=m)
    tl.store(bad + i, oob, mask=m)


@triton.jit
def _nll_backward_kernel(t, w_t, dl, dx, n, C, ignore_index, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    tv = tl.load(t + i, mask=m, other=0).to(tl.int64)
    valid = (tv != ignore_index) & (tv >= 0) & (tv < C)
    v = -load_up(w_t + i, m, 0) * load_up(dl + i, m, 0)
    tl.store(dx + i * C + tl.where(valid, tv, 0), v.to(dx.dtype.element_ty), mask=m & valid)


def _check_targets(target: CudaArray, bad: CudaArray, ignore_index: int, n_classes: int) -> None:
    if bad.numel() and bool(to_host(_any(bad, (0,), False)).reshape(-1)[0]):
        t = to_host(target)
        valid = t != ignore_index
        wrong = t[valid & ((t < 0) | (t >= n_classes))]
        raise IndexError(f"Target {int(wrong[0])} is out of bounds (expected class indices in "
                         f"[0, {n_classes - 1}] or ignore_index={ignore_index})")


def nll_loss_forward(logp: CudaArray, target: CudaArray, weight, ignore_index):
    """(loss_i = -w[t_i] logp[i, t_i], w_t,i); 0 where t_i == ignore_index."""
    n, c = logp.shape
    loss, w_t = CudaArray.empty((n,), logp.dtype), CudaArray.empty((n,), logp.dtype)
    bad = CudaArray.empty((n,), np.bool_)
    target = contiguous(target)
    if n:
        st = logp.element_strides()
        w = contiguous(weight) if weight is not None else logp
        _nll_kernel[grid(n)](logp, target, w, loss, w_t, bad, n, c, st[0], st[1], int(ignore_index),
                             HAS_W=weight is not None, BLOCK=BLOCK)
    _check_targets(target, bad, ignore_index, c)
    return loss, w_t


def nll_loss_backward(logp: CudaArray, target: CudaArray, w_t: CudaArray, dloss: CudaArray, ignore_index):
    """dx = zeros with dx[i, t_i] = -w_t,i dloss_i."""
    n, c = logp.shape
    dx = full((n, c), 0, logp.dtype)
    if n:
        _nll_backward_kernel[grid(n)](contiguous(target), contiguous(w_t), contiguous(dloss), dx, n, c,
                                      int(ignore_index), BLOCK=BLOCK)
    return dx
