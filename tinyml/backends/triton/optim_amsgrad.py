"""Triton kernel: Adam / AdamW with AMSGrad for the cuda device (optim.py holds adam_step, sgd_step).

    adam_amsgrad_step: adam_step's update with vmax <- max(vmax, v) (in place) normalising:
        p <- p - lr / (1 - beta1^t) * m / (sqrt(vmax) / sqrt(1 - beta2^t) + eps)
One fused pass per parameter (p, m, v, vmax updated in place), float32 compute for 16-bit
parameters, float64 for float64.
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton_loss.py
"""
from __future__ import annotations

import triton
import triton.language as tl

from ._strided import BLOCK, grid
from .copy import clone
from .optim import _check

__all__ = ["adam_amsgrad_step"]


@triton.jit
def _amsgrad_kernel(p, g, m, v, vmax, n, lr, beta1, beta2, eps, wd, bc1, bc2_sqrt, DECOUPLED: tl.constexpr,
                    BLOCK: tl.constexpr):
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
    vm = tl.maximum(tl.load(vmax + i, mask=msk, other=0.0).to(acc), vv)
    pv = pv - (lr / bc1) * (mv / (tl.sqrt(vm) / bc2_sqrt + eps))
    tl.store(m + i, mv.to(m.dtype.element_ty), mask=msk)
    tl.store(v + i, vv.to(v.dtype.element_ty), mask=msk)
    tl.store(vmax + i, vm.to(vmax.dtype.element_ty), mask=msk)
    tl.store(p + i, pv.to(p.dtype.element_ty), mask=msk)


def adam_amsgrad_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, lr, beta1, beta2, eps, weight_decay,
                      step, decoupled):
    """adam_step with AMSGrad, in place over lists of same-dtype contiguous arrays."""
    bc1, bc2_sqrt = 1.0 - beta1 ** step, (1.0 - beta2 ** step) ** 0.5
    for p, g, m, v, vmax in zip(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
        _check(p, m, v, vmax)
        g = g if g.is_contiguous() else clone(g)
        n = p.numel()
        if n:
            _amsgrad_kernel[grid(n)](p, g, m, v, vmax, n, float(lr), float(beta1), float(beta2), float(eps),
                                     float(weight_decay), bc1, bc2_sqrt, DECOUPLED=bool(decoupled), BLOCK=BLOCK)
