"""Triton kernels: the elementwise ops of several operands for the cuda device.

    pow_backward_base(a, b, g)          g b a^(b-1), 0 where b == 0
    pow_backward_exponent(a, b, y, g)   g y ln a, 0 where a == 0 and b >= 0
    minmax_backward(a, b, g, is_max)    g to the selected side, ties split g / 2
    clamp(x, lo, hi) / clamp_backward   lo, hi arrays, scalars or None (PyTorch's gradient split)
    masked_fill  lerp  addcmul  addcdiv  (and unary.py's nan_to_num(x, nan, posinf, neginf))
One strided kernel (four inputs, up to three contiguous outputs, the op a constexpr string);
Python scalars and nan_to_num's replacements travel as 1-element arrays broadcast by stride 0,
so float64 values keep every digit. 16-bit floats compute in float32.
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton_pointwise.py
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._strided import strided_offsets, upcast
from .creation import cast, clone, full
from .elementwise import _as_array, _pow64, where
from .pointwise import _launch

__all__ = [
    "addcdiv",
    "addcmul",
    "clamp",
    "clamp_backward",
    "lerp",
    "masked_fill",
    "minmax_backward",
    "pow_backward_base",
    "pow_backward_exponent",
]


@triton.jit
def _kernel_n(a, b, c, d, o1, o2, o3, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3,
              d0, d1, d2, d3, OP: tl.constexpr, HAS_B: tl.constexpr, HAS_C: tl.constexpr, BLOCK: tl.constexpr):
    """Up to four inputs, up to three outputs (contiguous), for the ops with several operands."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    y = upcast(tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m))
    z = upcast(tl.load(c + strided_offsets(i, s1, s2, s3, c0, c1, c2, c3), mask=m))
    w = upcast(tl.load(d + strided_offsets(i, s1, s2, s3, d0, d1, d2, d3), mask=m))
    if OP == "lerp":  # (start, end, weight)
        diff = y - x
        r = tl.where(tl.abs(z) < 0.5, x + z * diff, y - diff * (1 - z))
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    elif OP == "addcmul":  # (x, t1, t2, value)
        tl.store(o1 + i, (x + w * y * z).to(o1.dtype.element_ty), mask=m)
    elif OP == "addcdiv":
        tl.store(o1 + i, (x + w * y / z).to(o1.dtype.element_ty), mask=m)
    elif OP == "pow_backward_base":  # (a, b, g): g b a^(b-1), 0 where b == 0
        r = tl.where(y == 0, 0.0, z * y * _pow64(x, y - 1))
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    elif OP == "pow_backward_exponent":  # (a, b, out, g): g out ln a, 0 where a == 0 and b >= 0
        r = tl.where((x == 0) & (y >= 0), 0.0, w * z * tl.log(x.to(tl.float64)))
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    elif OP == "nan_to_num":  # (x, nan, posinf, neginf)
        r = tl.where(x != x, y.to(x.dtype), x)  # noqa: PLR0124 (x != x: NaN test)
        r = tl.where(r == float("inf"), z.to(x.dtype), r)
        r = tl.where(r == float("-inf"), w.to(x.dtype), r)
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    elif OP == "clamp":  # (x, lo, hi)
        r = x
        if HAS_B:
            r = tl.maximum(r, y, propagate_nan=tl.PropagateNan.ALL)
        if HAS_C:
            r = tl.minimum(r, z, propagate_nan=tl.PropagateNan.ALL)
        tl.store(o1 + i, r.to(o1.dtype.element_ty), mask=m)
    elif OP == "clamp_backward":  # (x, lo, hi, g) -> dx, dlo, dhi
        inside = x == x  # noqa: PLR0124 (x != x: NaN test)
        if HAS_B:
            inside = inside & (x >= y)
        if HAS_C:
            inside = inside & (x <= z)
        tl.store(o1 + i, tl.where(inside, w, 0.0).to(o1.dtype.element_ty), mask=m)
        if HAS_B:
            below = x < y
            if HAS_C:
                below = below & (y < z)
            tl.store(o2 + i, tl.where(below, w, 0.0).to(o2.dtype.element_ty), mask=m)
        if HAS_C:
            above = x > z
            if HAS_B:
                above = above | (z < y)
            tl.store(o3 + i, tl.where(above, w, 0.0).to(o3.dtype.element_ty), mask=m)
    else:  # minmax_backward (a, b, g, is_max as w) -> ga, gb
        win_a = tl.where(w != 0, x > y, x < y)
        share = tl.where(win_a, 1.0, tl.where(x == y, 0.5, 0.0))
        ga = (z * share).to(o1.dtype.element_ty)
        tl.store(o1 + i, ga, mask=m)
        tl.store(o2 + i, (z - ga.to(z.dtype)).to(o2.dtype.element_ty), mask=m)


def _multi(op: str, ins: list, outs: list[CudaArray], has_b: bool = True, has_c: bool = True) -> None:
    shape = outs[0].shape
    like = outs[0]
    arrays = [_as_array(a, like, shape) if a is not None else outs[0] for a in ins]
    arrays += [outs[0]] * (4 - len(arrays))
    outs = outs + [outs[0]] * (3 - len(outs))
    _launch(_kernel_n, arrays, outs, OP=op, HAS_B=has_b, HAS_C=has_c)


def minmax_backward(a: CudaArray, b, g: CudaArray, is_max):
    """(ga, gb): g to the selected side; ties split g / 2 to each."""
    ga, gb = CudaArray.empty(g.shape, g.dtype), CudaArray.empty(g.shape, g.dtype)
    _multi("minmax_backward", [a, b, g, full((1,), 1.0 if is_max else 0.0, g.dtype)], [ga, gb])
    return ga, gb


def clamp(x: CudaArray, lo, hi) -> CudaArray:
    """min(max(x, lo), hi): lo, hi arrays, scalars or None; NaN propagates; lo > hi gives hi."""
    if lo is None and hi is None:
        return clone(x)
    out = CudaArray.empty(x.shape, x.dtype)
    _multi("clamp", [x, lo, hi], [out], has_b=lo is not None, has_c=hi is not None)
    return out


def clamp_backward(x: CudaArray, lo, hi, g: CudaArray):
    """(dx, dlo, dhi), PyTorch's split; dlo / dhi None unless lo / hi are arrays."""
    outs = [CudaArray.empty(g.shape, g.dtype) for _ in range(3)]
    _multi("clamp_backward", [x, lo, hi, g], outs, has_b=lo is not None, has_c=hi is not None)
    return outs[0], (outs[1] if isinstance(lo, CudaArray) else None), (outs[2] if isinstance(hi, CudaArray) else None)


def masked_fill(x: CudaArray, mask: CudaArray, value) -> CudaArray:
    """x with value where mask is true (value a scalar or a 0-d array)."""
    if isinstance(value, CudaArray):
        value = cast(value, x.dtype) if value.dtype != x.dtype else value
    return where(mask, value, x)


def lerp(start: CudaArray, end, weight) -> CudaArray:
    """start + weight (end - start), from the nearer end for |weight| >= 0.5."""
    out = CudaArray.empty(start.shape, start.dtype)
    _multi("lerp", [start, end, weight], [out])
    return out


def addcmul(x: CudaArray, t1, t2, value) -> CudaArray:
    """x + value t1 t2."""
    out = CudaArray.empty(x.shape, x.dtype)
    _multi("addcmul", [x, t1, t2, value], [out])
    return out


def addcdiv(x: CudaArray, t1, t2, value) -> CudaArray:
    """x + value t1 / t2."""
    out = CudaArray.empty(x.shape, x.dtype)
    _multi("addcdiv", [x, t1, t2, value], [out])
    return out


def pow_backward_base(a, b, g: CudaArray) -> CudaArray:
    """g b a^(b-1), 0 where b == 0 (even at a == 0)."""
    out = CudaArray.empty(g.shape, g.dtype)
    _multi("pow_backward_base", [a, b, g], [out])
    return out


def pow_backward_exponent(a, b, out: CudaArray, g: CudaArray) -> CudaArray:
    """g a^b ln a, 0 where a == 0 and b >= 0."""
    res = CudaArray.empty(g.shape, g.dtype)
    _multi("pow_backward_exponent", [a, b, out, g], [res])
    return res
