"""Triton kernels: the gated linear unit for the cuda device.

    glu_forward(x, dim)       a, b = the halves of x along dim;  y = a sigmoid(b)
    glu_backward(x, dy, dim)  da = dy s,  db = dy a s (1 - s)   (s = sigmoid(b))
The halves are strided views of x (and of dx), so one strided kernel reads and writes them in
place without a split or a concatenation; float32 compute for 16-bit floats.
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton_loss.py
"""
from __future__ import annotations

import math

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._rows import load_up
from ._strided import BLOCK, grid, launch_strided, strided_offsets
from .movement import slice_view

__all__ = ["glu_backward", "glu_forward"]


@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _glu_kernel(a, b, g, o1, o2, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, g0, g1, g2, g3,
                p0, p1, p2, p3, q0, q1, q2, q3, BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    av = load_up(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), m, 0)
    bv = load_up(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), m, 0)
    s = _sigmoid(bv)
    if BACKWARD:
        gv = load_up(g + strided_offsets(i, s1, s2, s3, g0, g1, g2, g3), m, 0)
        tl.store(o1 + strided_offsets(i, s1, s2, s3, p0, p1, p2, p3), (gv * s).to(o1.dtype.element_ty), mask=m)
        tl.store(o2 + strided_offsets(i, s1, s2, s3, q0, q1, q2, q3), (gv * av * s * (1 - s)).to(o2.dtype.element_ty),
                 mask=m)
    else:
        tl.store(o1 + strided_offsets(i, s1, s2, s3, p0, p1, p2, p3), (av * s).to(o1.dtype.element_ty), mask=m)


def _halves(x: CudaArray, dim: int):
    h = x.shape[dim] // 2
    pre = (slice(None),) * dim
    return slice_view(x, pre + (slice(0, h, 1),)), slice_view(x, pre + (slice(h, 2 * h, 1),))


def _launch(arrays: list[CudaArray], backward: bool) -> None:
    shape = arrays[0].shape
    if not math.prod(shape):
        return

    def launch(s, strides, views):
        cnt = math.prod(s)
        _glu_kernel[grid(cnt)](*views, cnt, s[1], s[2], s[3], *(v for st in strides for v in st), BACKWARD=backward,
                               BLOCK=BLOCK)

    launch_strided(launch, shape, arrays)


def glu_forward(x: CudaArray, dim) -> CudaArray:
    """a sigmoid(b) over the two halves of x along dim."""
    a, b = _halves(x, dim)
    out = CudaArray.empty(a.shape, x.dtype)
    _launch([a, b, a, out, out], False)
    return out


def glu_backward(x: CudaArray, dy: CudaArray, dim) -> CudaArray:
    """dx = [dy s, dy a s (1 - s)] along dim."""
    a, b = _halves(x, dim)
    dx = CudaArray.empty(x.shape, x.dtype)
    da, db = _halves(dx, dim)
    _launch([a, b, dy, da, db], True)
    return dx
