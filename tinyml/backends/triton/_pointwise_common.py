"""The strided elementwise kernels shared by elementwise.py, pointwise.py, unary.py and
loss_elementwise.py (a private module: it lists no kernels). Each kernel family module builds
its kernels from these by naming its op, a constexpr string compiled once per op and dtype:

    binary_kernel(a, b)       the core two-operand table: add sub mul div pow maximum minimum,
                              comparisons eq ne lt le gt ge, and unary.py's backward helpers
                              tanh_backward(y, g) = g (1 - y^2), sigmoid_backward(y, g) = g y (1 - y),
                              relu_backward(y, g) = g [y > 0]
    several_operand_kernel    up to four inputs and three outputs: lerp addcmul addcdiv clamp
                              clamp_backward minmax_backward (pointwise.py), pow_backward_base
                              pow_backward_exponent (elementwise.py), nan_to_num (unary.py)
The integer-aware one- and two-operand kernels are in _int_aware.py.

Half-precision inputs compute in float32; tanh and pow compute in float64 (libdevice is not
available in Triton's interpreter, and the float32 formulas lose digits near 0). A Python scalar
operand becomes a 1-element device array broadcast by stride 0, so float64 values keep every digit.
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._strided import BLOCK, grid, launch_strided, strided_offsets, upcast
from ._view import expand
from .creation import full


def as_array(x, like: CudaArray, shape) -> CudaArray:
    """x as a device array of `shape`: an array as a broadcast view, a scalar as a 1-element array of
    like's dtype."""
    if isinstance(x, CudaArray):
        return x if x.shape == tuple(shape) else expand(x, shape)
    return expand(full((1,), x, like.dtype), shape)


def launch(kernel, ins: list[CudaArray], outs: list[CudaArray], **meta) -> None:
    """Run a strided elementwise kernel: `ins` have outs[0]'s shape (broadcast views fine), `outs`
    are contiguous; the kernel takes the inputs' strides (4 per input) after the element count."""
    shape = outs[0].shape
    if not outs[0].numel():
        return

    def launch_views(s, strides, views):
        cnt = math.prod(s)
        flat = [v for st in strides[:len(ins)] for v in st]
        kernel[grid(cnt)](*views, cnt, s[1], s[2], s[3], *flat, BLOCK=BLOCK, **meta)

    launch_strided(launch_views, shape, ins + outs)


def is_int(dtype) -> bool:
    return np.dtype(dtype).kind in "iub"


@triton.jit
def tanh64(x):
    a = tl.abs(x.to(tl.float64))
    e = tl.exp(-2.0 * a)
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def pow64(x, y):
    x = x.to(tl.float64)
    y = y.to(tl.float64)
    mag = tl.exp2(y * tl.log2(tl.abs(x)))
    y_is_int = tl.floor(y) == y
    odd = y_is_int & ((tl.abs(y) % 2.0) == 1.0)
    r = tl.where((x < 0) & odd, -mag, mag)
    r = tl.where((x < 0) & (~y_is_int), float("nan"), r)
    return tl.where(y == 0, 1.0, r)


@triton.jit
def _binary_op(x, y, OP: tl.constexpr):
    if OP == "add":
        r = x + y
    elif OP == "sub":
        r = x - y
    elif OP == "mul":
        r = x * y
    elif OP == "div":
        r = x / y
    elif OP == "pow":
        r = pow64(x, y)
    elif OP == "maximum":
        r = tl.maximum(x, y, propagate_nan=tl.PropagateNan.ALL)
    elif OP == "minimum":
        r = tl.minimum(x, y, propagate_nan=tl.PropagateNan.ALL)
    elif OP == "eq":
        r = x == y
    elif OP == "ne":
        r = x != y
    elif OP == "lt":
        r = x < y
    elif OP == "le":
        r = x <= y
    elif OP == "gt":
        r = x > y
    elif OP == "ge":
        r = x >= y
    elif OP == "tanh_backward":
        r = y * (1 - x * x)
    elif OP == "sigmoid_backward":
        r = y * x * (1 - x)
    else:  # relu_backward
        r = tl.where(x > 0, y, 0)
    return r


@triton.jit
def binary_kernel(a, b, out, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, OP: tl.constexpr,
                  BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    y = upcast(tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m))
    tl.store(out + i, _binary_op(x, y, OP).to(out.dtype.element_ty), mask=m)


def binary(op: str, result_bool: bool = False):
    """The kernel `op(a, b)` of the core binary table; a or b may be a Python scalar."""
    def kernel(a, b):
        like = a if isinstance(a, CudaArray) else b
        shape = like.shape
        out = CudaArray.empty(shape, np.bool_ if result_bool else like.dtype)
        launch(binary_kernel, [as_array(a, like, shape), as_array(b, like, shape)], [out], OP=op)
        return out

    kernel.__name__ = op
    return kernel


@triton.jit
def several_operand_kernel(a, b, c, d, o1, o2, o3, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3,
                           c0, c1, c2, c3, d0, d1, d2, d3, OP: tl.constexpr, HAS_B: tl.constexpr,
                           HAS_C: tl.constexpr, BLOCK: tl.constexpr):
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
        r = tl.where(y == 0, 0.0, z * y * pow64(x, y - 1))
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


def several_operands(op: str, ins: list, outs: list[CudaArray], has_b: bool = True,
                     has_c: bool = True) -> None:
    """Run `op` of several_operand_kernel: `ins` arrays, scalars or None (then unused), outs contiguous."""
    shape = outs[0].shape
    like = outs[0]
    arrays = [as_array(a, like, shape) if a is not None else outs[0] for a in ins]
    arrays += [outs[0]] * (4 - len(arrays))
    outs = outs + [outs[0]] * (3 - len(outs))
    launch(several_operand_kernel, arrays, outs, OP=op, HAS_B=has_b, HAS_C=has_c)
