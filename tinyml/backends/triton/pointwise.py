"""Triton kernels: selection and fused pointwise ops for the cuda device (strided operands,
broadcast by stride 0; the ops in ops/pointwise.py).

    where(cond, a, b)                   cond ? a : b (its own kernel)
    maximum minimum                     NaN propagates (the core binary kernel, _pointwise_common.py)
    minmax_backward(a, b, g, is_max)    g to the selected side, ties split g / 2
    clamp(x, lo, hi) / clamp_backward   lo, hi arrays, scalars or None (PyTorch's gradient split)
    masked_fill                         where(mask, value, x)
    lerp  addcmul  addcdiv              the several-operand kernel (_pointwise_common.py), as
                                        minmax_backward and clamp
Python scalars travel as 1-element arrays broadcast by stride 0, so float64 values keep every
digit. 16-bit floats compute in float32.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_pointwise.py -k cuda
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._pointwise_common import as_array, binary, launch, several_operands
from ._strided import strided_offsets
from .creation import cast, clone, full

__all__ = ["where", "maximum", "minimum", "minmax_backward", "clamp", "clamp_backward", "masked_fill", "lerp",
           "addcmul", "addcdiv"]


@triton.jit
def _where_kernel(c, a, b, out, n, s1, s2, s3, c0, c1, c2, c3, a0, a1, a2, a3, b0, b1, b2, b3,
                  BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    cond = tl.load(c + strided_offsets(i, s1, s2, s3, c0, c1, c2, c3), mask=m) != 0
    x = tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m)
    y = tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m)
    tl.store(out + i, tl.where(cond, x, y), mask=m)


def where(cond: CudaArray, a, b) -> CudaArray:
    """cond ? a : b with one of a, b possibly a Python scalar; the dtype is the array operand's."""
    like = a if isinstance(a, CudaArray) else b
    shape = cond.shape
    out = CudaArray.empty(shape, like.dtype)
    launch(_where_kernel, [cond, as_array(a, like, shape), as_array(b, like, shape)], [out])
    return out


maximum, minimum = binary("maximum"), binary("minimum")


def minmax_backward(a: CudaArray, b, g: CudaArray, is_max):
    """(ga, gb): g to the selected side; ties split g / 2 to each."""
    ga, gb = CudaArray.empty(g.shape, g.dtype), CudaArray.empty(g.shape, g.dtype)
    several_operands("minmax_backward", [a, b, g, full((1,), 1.0 if is_max else 0.0, g.dtype)], [ga, gb])
    return ga, gb


def clamp(x: CudaArray, lo, hi) -> CudaArray:
    """min(max(x, lo), hi): lo, hi arrays, scalars or None; NaN propagates; lo > hi gives hi."""
    if lo is None and hi is None:
        return clone(x)
    out = CudaArray.empty(x.shape, x.dtype)
    several_operands("clamp", [x, lo, hi], [out], has_b=lo is not None, has_c=hi is not None)
    return out


def clamp_backward(x: CudaArray, lo, hi, g: CudaArray):
    """(dx, dlo, dhi), PyTorch's split; dlo / dhi None unless lo / hi are arrays."""
    outs = [CudaArray.empty(g.shape, g.dtype) for _ in range(3)]
    several_operands("clamp_backward", [x, lo, hi, g], outs, has_b=lo is not None, has_c=hi is not None)
    dlo = outs[1] if isinstance(lo, CudaArray) else None
    dhi = outs[2] if isinstance(hi, CudaArray) else None
    return outs[0], dlo, dhi


def masked_fill(x: CudaArray, mask: CudaArray, value) -> CudaArray:
    """x with value where mask is true (value a scalar or a 0-d array)."""
    if isinstance(value, CudaArray):
        value = cast(value, x.dtype) if value.dtype != x.dtype else value
    return where(mask, value, x)


def lerp(start: CudaArray, end, weight) -> CudaArray:
    """start + weight (end - start), from the nearer end for |weight| >= 0.5."""
    out = CudaArray.empty(start.shape, start.dtype)
    several_operands("lerp", [start, end, weight], [out])
    return out


def addcmul(x: CudaArray, t1, t2, value) -> CudaArray:
    """x + value t1 t2."""
    out = CudaArray.empty(x.shape, x.dtype)
    several_operands("addcmul", [x, t1, t2, value], [out])
    return out


def addcdiv(x: CudaArray, t1, t2, value) -> CudaArray:
    """x + value t1 / t2."""
    out = CudaArray.empty(x.shape, x.dtype)
    several_operands("addcdiv", [x, t1, t2, value], [out])
    return out
