"""Triton kernels: the integer-aware elementwise kernels for the cuda device (elementwise.py holds
the core arithmetic and comparisons).

    binary:  div_trunc floor_divide remainder fmod logical_and/or/xor bitwise_and/or/xor
    unary:   bitwise_not logical_not
One strided kernel per arity, the op a constexpr string (IS_INT picks integer formulas). Their op
tables also hold the formulas of unary.py's exp2 expm1 log2 log10 log1p square reciprocal tan
sign round trunc frac isnan isinf isfinite and of its (x|y, g) backward helpers, which unary.py
launches through `_unary_kernel` and `_backward_kernel`: expm1 and log1p use Kahan's forms
(u = e^x; (u - 1) x / ln u), exact near 0 without libdevice; tan computes in float64; round is
half-to-even from floor in float64. Python scalars become 1-element device arrays broadcast by
stride 0, so float64 values keep every digit. Integer division by zero raises, as in PyTorch:
that check reads one flag back to the host (a sync).
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton_pointwise.py
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._strided import BLOCK, grid, launch_strided, strided_offsets, upcast
from .creation import clone, full, to_host
from .elementwise import _as_array

__all__ = [
    "bitwise_and",
    "bitwise_not",
    "bitwise_or",
    "bitwise_xor",
    "div_trunc",
    "floor_divide",
    "fmod",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "remainder",
]


@triton.jit
def _trunc(x):
    return tl.where(x < 0, tl.ceil(x), tl.floor(x))


@triton.jit
def _rint(x):
    """Round half to even (x float64)."""
    r = tl.floor(x + 0.5)
    r = tl.where((r - x == 0.5) & (r % 2.0 != 0), r - 1.0, r)
    return tl.where(tl.abs(x) >= 4503599627370496.0, x, r)  # 2^52: already an integer


@triton.jit
def _fl_mod(a, b, IS_INT: tl.constexpr):
    """Python's a % b (the sign of b) from C's remainder."""
    r = a % b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


@triton.jit
def _floor_div(a, b, IS_INT: tl.constexpr):
    if IS_INT:
        q = a // b  # truncates
        q = tl.where(((a % b) != 0) & ((a < 0) != (b < 0)), q - 1, q)
    else:  # numpy's: exact where floor(a / b) would round across an integer
        mod = a % b
        div = (a - mod) / b
        div = tl.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1.0, div)
        q = tl.floor(div)
        q = tl.where(div - q > 0.5, q + 1.0, q)
        q = tl.where(b == 0, a / b, q)
    return q


@triton.jit
def _unary(x, p, OP: tl.constexpr, IS_INT: tl.constexpr):
    if OP == "exp2":
        r = tl.exp2(x)
    elif OP == "expm1":
        u = tl.exp(x)
        r = tl.where(u == 1.0, x, tl.where(u - 1.0 == -1.0, -1.0, (u - 1.0) * x / tl.log(u)))
        r = tl.where(x == float("inf"), x, r)
    elif OP == "log2":
        r = tl.log2(x)
    elif OP == "log10":
        r = tl.log(x) * 0.43429448190325176
    elif OP == "log1p":
        u = 1.0 + x
        r = tl.where(u == 1.0, x, tl.log(u) * x / (u - 1.0))
        r = tl.where(x == float("inf"), x, r)
    elif OP == "square":
        r = x * x
    elif OP == "reciprocal":
        r = 1.0 / x
    elif OP == "tan":
        x64 = x.to(tl.float64)
        r = tl.sin(x64) / tl.cos(x64)
    elif OP == "sign":
        r = tl.where(x > 0, 1, tl.where(x < 0, -1, 0)).to(x.dtype)
    elif OP == "round":
        x64 = x.to(tl.float64)
        if p > 0:
            r = _rint(x64 * p) / p
        elif p < 0:
            r = _rint(x64 / -p) * -p
        else:
            r = _rint(x64)
    elif OP == "trunc":
        r = _trunc(x)
    elif OP == "frac":
        r = x - _trunc(x)
    elif OP == "isnan":
        r = x != x  # noqa: PLR0124 (x != x: NaN test)
    elif OP == "isinf":
        r = (x == float("inf")) | (x == float("-inf"))
    elif OP == "isfinite":
        r = (x == x) & (x != float("inf")) & (x != float("-inf"))  # noqa: PLR0124 (x != x: NaN test)
    elif OP == "bitwise_not":
        r = ~x
    else:  # logical_not
        r = x == 0
    return r


@triton.jit
def _binary(a, b, OP: tl.constexpr, IS_INT: tl.constexpr):
    if OP == "div_trunc":
        if IS_INT:
            r = a // b
        else:
            r = _trunc(a / b)
    elif OP == "floor_divide":
        r = _floor_div(a, b, IS_INT)
    elif OP == "remainder":
        r = _fl_mod(a, b, IS_INT)
    elif OP == "fmod":
        r = a % b
    elif OP == "logical_and":
        r = (a != 0) & (b != 0)
    elif OP == "logical_or":
        r = (a != 0) | (b != 0)
    elif OP == "logical_xor":
        r = (a != 0) != (b != 0)
    elif OP == "bitwise_and":
        r = a & b
    elif OP == "bitwise_or":
        r = a | b
    elif OP == "bitwise_xor":
        r = a ^ b
    elif OP == "abs_backward":  # (x, g)
        r = tl.where(a > 0, b, tl.where(a < 0, -b, 0.0))
    elif OP == "sqrt_backward":  # (y, g)
        r = b / (2.0 * a)
    elif OP == "rsqrt_backward":
        r = -0.5 * b * a * a * a
    elif OP == "reciprocal_backward":
        r = -b * a * a
    elif OP == "tan_backward":
        r = b * (1.0 + a * a)
    elif OP == "erf_backward":  # (x, g)
        r = b * 1.1283791670955126 * tl.exp(-a * a)
    else:  # nan_to_num_backward (x, g)
        r = tl.where((a == a) & (a != float("inf")) & (a != float("-inf")), b, 0.0)  # noqa: PLR0124 (x != x: NaN test)
    return r


@triton.jit
def _kernel1(a, out, n, s1, s2, s3, a0, a1, a2, a3, p, OP: tl.constexpr, IS_INT: tl.constexpr,
             BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    tl.store(out + i, _unary(x, p, OP, IS_INT).to(out.dtype.element_ty), mask=m)


@triton.jit
def _kernel2(a, b, out, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, OP: tl.constexpr, IS_INT: tl.constexpr,
             BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    y = upcast(tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m))
    tl.store(out + i, _binary(x, y, OP, IS_INT).to(out.dtype.element_ty), mask=m)


def _launch(kernel, ins: list[CudaArray], outs: list[CudaArray], **meta) -> None:
    """ins: arrays of outs[0]'s shape (broadcast views fine); outs: contiguous."""
    shape = outs[0].shape
    if not outs[0].numel():
        return

    def launch(s, strides, views):
        cnt = math.prod(s)
        flat = [v for st in strides[:len(ins)] for v in st]
        kernel[grid(cnt)](*views, cnt, s[1], s[2], s[3], *flat, BLOCK=BLOCK, **meta)

    launch_strided(launch, shape, ins + outs)


def _is_int(dtype) -> bool:
    return np.dtype(dtype).kind in "iub"


def _unary_kernel(op: str, out_dtype=None, int_identity: bool = False, int_const=None):
    def kernel(x: CudaArray) -> CudaArray:
        if _is_int(x.dtype) and int_identity:
            return clone(x)
        if _is_int(x.dtype) and int_const is not None:
            return full(x.shape, int_const, np.bool_)
        out = CudaArray.empty(x.shape, out_dtype or x.dtype)
        _launch(_kernel1, [x], [out], p=0.0, OP=op, IS_INT=_is_int(x.dtype))
        return out

    kernel.__name__ = op
    return kernel


logical_not = _unary_kernel("logical_not", np.bool_)
_bitwise_not = _unary_kernel("bitwise_not")


def bitwise_not(x: CudaArray) -> CudaArray:
    """~x (logical not for bool)."""
    return logical_not(x) if x.dtype == np.bool_ else _bitwise_not(x)


def _binary_kernel(op: str, bool_out: bool = False, int_divisor: bool = False):
    def kernel(a, b) -> CudaArray:
        like = a if isinstance(a, CudaArray) else b
        shape = like.shape
        if int_divisor and _is_int(like.dtype):
            _check_int_divisor(b, shape)
        out = CudaArray.empty(shape, np.bool_ if bool_out else like.dtype)
        _launch(_kernel2, [_as_array(a, like, shape), _as_array(b, like, shape)], [out], OP=op,
                IS_INT=_is_int(like.dtype))
        return out

    kernel.__name__ = op
    return kernel


def _check_int_divisor(b, shape) -> None:
    """PyTorch raises for an integer division by zero; numpy and the GPU would not."""
    if isinstance(b, CudaArray):
        from .elementwise import eq
        from .reduce_stats import any as _any

        zero = bool(to_host(_any(eq(b, 0), tuple(range(b.ndim)), False)).reshape(-1)[0]) if b.numel() else False
    else:
        zero = b == 0
    if zero:
        raise RuntimeError("ZeroDivisionError: integer division by zero")


div_trunc, floor_divide, remainder, fmod = (_binary_kernel(op, int_divisor=True) for op in
                                            ("div_trunc", "floor_divide", "remainder", "fmod"))
logical_and, logical_or, logical_xor = (_binary_kernel(op, bool_out=True) for op in
                                        ("logical_and", "logical_or", "logical_xor"))
bitwise_and, bitwise_or, bitwise_xor = (_binary_kernel(op) for op in ("bitwise_and", "bitwise_or", "bitwise_xor"))


def _backward_kernel(op: str):
    def kernel(saved: CudaArray, g: CudaArray) -> CudaArray:
        out = CudaArray.empty(g.shape, g.dtype)
        _launch(_kernel2, [_as_array(saved, g, g.shape), g], [out], OP=op, IS_INT=False)
        return out

    kernel.__name__ = op
    return kernel
