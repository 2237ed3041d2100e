"""Triton kernels: fused optimizer steps over every parameter (cuda device).

    adam_step (decoupled=True is AdamW):
        g += wd p (Adam)  |  p -= lr wd p (AdamW)
        m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        AMSGrad: vmax = max(vmax, v) (in place) replaces v in the denominator
    sgd_step: g += wd p; buf = momentum buf + (1 - dampening) g (buf = g on the first step);
              g = g + momentum buf (nesterov) or buf; p -= lr g (maximize flips g's sign)
One launch per parameter, everything in float32 registers (float64 for float64 params); the
parameter and its state are updated in place.
Tests: TRITON_INTERPRET=1 python -m pytest tests/optim/test_optim.py -k cuda
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._strided import BLOCK, grid
from .creation import clone

__all__ = ["adam_step", "adam_amsgrad_step", "sgd_step"]


@triton.jit
def _adam_kernel(p, g, m, v, vmax, n, lr, beta1, beta2, eps, wd, bc1, bc2_sqrt, DECOUPLED: tl.constexpr,
                 AMSGRAD: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    msk = i < n
    pv = tl.load(p + i, mask=msk, other=0.0)
    acc = tl.float64 if pv.dtype == tl.float64 else tl.float32
    pv = pv.to(acc)
    gv = tl.load(g + i, mask=msk, other=0.0).to(acc)
    if DECOUPLED:
        pv = pv * (1.0 - lr * wd)
    else:
        gv = gv + wd * pv
    mv = tl.load(m + i, mask=msk, other=0.0).to(acc)
    mv = mv + (gv - mv) * (1.0 - beta1)
    vv = beta2 * tl.load(v + i, mask=msk, other=0.0).to(acc) + (1.0 - beta2) * gv * gv
    denom = vv
    if AMSGRAD:  # the running maximum of v normalises instead of v itself
        denom = tl.maximum(tl.load(vmax + i, mask=msk, other=0.0).to(acc), vv)
        tl.store(vmax + i, denom.to(vmax.dtype.element_ty), mask=msk)
    pv = pv - (lr / bc1) * (mv / (tl.sqrt(denom) / bc2_sqrt + eps))
    tl.store(m + i, mv.to(m.dtype.element_ty), mask=msk)
    tl.store(v + i, vv.to(v.dtype.element_ty), mask=msk)
    tl.store(p + i, pv.to(p.dtype.element_ty), mask=msk)


@triton.jit
def _sgd_kernel(p, g, buf, n, lr, momentum, dampening, wd, FIRST: tl.constexpr, HAS_MOMENTUM: tl.constexpr,
                NESTEROV: tl.constexpr, MAXIMIZE: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    msk = i < n
    pv = tl.load(p + i, mask=msk, other=0.0)
    acc = tl.float64 if pv.dtype == tl.float64 else tl.float32
    pv = pv.to(acc)
    gv = tl.load(g + i, mask=msk, other=0.0).to(acc)
    if MAXIMIZE:
        gv = -gv
    gv = gv + wd * pv
    if HAS_MOMENTUM:
        if FIRST:
            b = gv
        else:
            b = momentum * tl.load(buf + i, mask=msk, other=0.0).to(acc) + (1.0 - dampening) * gv
        tl.store(buf + i, b.to(buf.dtype.element_ty), mask=msk)
        if NESTEROV:
            gv = gv + momentum * b
        else:
            gv = b
    tl.store(p + i, (pv - lr * gv).to(p.dtype.element_ty), mask=msk)


def _check(p: CudaArray, *others: CudaArray) -> None:
    for o in (p,) + others:
        if not o.is_contiguous():
            raise ValueError(f"optimizer step: expected contiguous parameters and state, got strides "
                             f"{o.element_strides()} for shape {o.shape}")


def _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step,
          decoupled):
    bc1, bc2_sqrt = 1.0 - beta1 ** step, (1.0 - beta2 ** step) ** 0.5
    amsgrad = max_exp_avg_sqs is not None
    for k, (p, g, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        vmax = max_exp_avg_sqs[k] if amsgrad else v
        _check(p, m, v, vmax)
        g = g if g.is_contiguous() else clone(g)
        n = p.numel()
        if n:
            _adam_kernel[grid(n)](p, g, m, v, vmax, n, float(lr), float(beta1), float(beta2), float(eps),
                                  float(weight_decay), bc1, bc2_sqrt, DECOUPLED=bool(decoupled),
                                  AMSGRAD=amsgrad, BLOCK=BLOCK)


def adam_step(params, grads, exp_avgs, exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    _adam(params, grads, exp_avgs, exp_avg_sqs, None, lr, beta1, beta2, eps, weight_decay, step, decoupled)


def adam_amsgrad_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps,
                      weight_decay, step, decoupled):
    """adam_step with AMSGrad: max_exp_avg_sqs (updated in place) normalises the step."""
    _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps, weight_decay, step,
          decoupled)


def sgd_step(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize):
    out = []
    for p, g, buf in zip(params, grads, momentum_buffers):
        _check(p)
        g = g if g.is_contiguous() else clone(g)
        first = buf is None and momentum != 0
        if first:
            buf = CudaArray.empty(p.shape, p.dtype)
        n = p.numel()
        if n:
            _sgd_kernel[grid(n)](p, g, buf if buf is not None else p, n, float(lr), float(momentum),
                                 float(dampening), float(weight_decay), FIRST=first,
                                 HAS_MOMENTUM=momentum != 0, NESTEROV=bool(nesterov), MAXIMIZE=bool(maximize),
                                 BLOCK=BLOCK)
        out.append(buf)
    return out
