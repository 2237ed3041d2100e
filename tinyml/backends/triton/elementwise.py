"""Triton kernels: elementwise ops for the cuda device (strided operands, broadcast by stride 0).

One kernel per arity, the op chosen by a constexpr string (compiled once per op and dtype):

    binary:  add sub mul div pow maximum minimum, comparisons (eq ne lt le gt ge), and for unary.py
             the backward helpers tanh_backward(y, g) = g (1 - y^2), sigmoid_backward(y, g) = g y (1 - y),
             relu_backward(y, g) = g [y > 0]
    where(cond, a, b)
The unary functions (neg exp log tanh ...) are in unary.py.

Half-precision inputs compute in float32; tanh and pow compute in float64 (libdevice is not
available in Triton's interpreter, and the float32 formulas lose digits near 0). A Python scalar
operand becomes a 1-element device array broadcast by stride 0.
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton.py
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

__all__ = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "where"]


@triton.jit
def _tanh64(x):
    a = tl.abs(x.to(tl.float64))
    e = tl.exp(-2.0 * a)
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _pow64(x, y):
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
        r = _pow64(x, y)
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
def _binary_kernel(a, b, out, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, OP: tl.constexpr,
                   BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    y = upcast(tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m))
    tl.store(out + i, _binary_op(x, y, OP).to(out.dtype.element_ty), mask=m)


@triton.jit
def _where_kernel(c, a, b, out, n, s1, s2, s3, c0, c1, c2, c3, a0, a1, a2, a3, b0, b1, b2, b3,
                  BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    cond = tl.load(c + strided_offsets(i, s1, s2, s3, c0, c1, c2, c3), mask=m) != 0
    x = tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m)
    y = tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m)
    tl.store(out + i, tl.where(cond, x, y), mask=m)


def _as_array(x, like: CudaArray, shape) -> CudaArray:
    if isinstance(x, CudaArray):
        return x if x.shape == tuple(shape) else expand(x, shape)
    return expand(full((1,), x, like.dtype), shape)


def _launch(kernel, arrays: list[CudaArray], out: CudaArray, **meta) -> CudaArray:
    """Run an elementwise kernel over `arrays` (all of out's shape) writing contiguous `out`."""
    def launch(shape, strides, views):
        n = math.prod(shape)
        flat = [s for st in strides[:-1] for s in st]
        kernel[grid(n)](*views, n, shape[1], shape[2], shape[3], *flat, BLOCK=BLOCK, **meta)

    if out.numel():
        launch_strided(launch, out.shape, arrays + [out])
    return out


def _binary(op: str, result_bool: bool = False):
    def kernel(a, b):
        like = a if isinstance(a, CudaArray) else b
        shape = like.shape
        out = CudaArray.empty(shape, np.bool_ if result_bool else like.dtype)
        return _launch(_binary_kernel, [_as_array(a, like, shape), _as_array(b, like, shape)], out, OP=op)

    kernel.__name__ = op
    return kernel


add, sub, mul, div, pow, maximum, minimum = (_binary(op) for op in
                                             ("add", "sub", "mul", "div", "pow", "maximum", "minimum"))
eq, ne, lt, le, gt, ge = (_binary(op, result_bool=True) for op in ("eq", "ne", "lt", "le", "gt", "ge"))
def where(cond: CudaArray, a, b) -> CudaArray:
    like = a if isinstance(a, CudaArray) else b
    shape = cond.shape
    out = CudaArray.empty(shape, like.dtype)
    return _launch(_where_kernel, [cond, _as_array(a, like, shape), _as_array(b, like, shape)], out)
