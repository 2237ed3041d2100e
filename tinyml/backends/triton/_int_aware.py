"""The integer-aware one- and two-operand strided kernels shared by elementwise.py and unary.py (a
private module: it lists no kernels). The op is a constexpr string; IS_INT picks integer formulas.

    one operand:   exp2 expm1 log2 log10 log1p square reciprocal tan sign round trunc frac isnan
                   isinf isfinite (unary.py), bitwise_not logical_not (elementwise.py)
    two operands:  div_trunc floor_divide remainder fmod logical_and/or/xor bitwise_and/or/xor
                   (elementwise.py), and unary.py's (x|y, g) backward helpers abs_backward
                   sqrt_backward rsqrt_backward reciprocal_backward tan_backward erf_backward
                   nan_to_num_backward
expm1 and log1p use Kahan's forms (u = e^x; (u - 1) x / ln u), exact near 0 without libdevice;
tan computes in float64; round is half-to-even from floor in float64. Integer division by zero
raises, as in PyTorch: that check reads one flag back to the host (a sync).
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._pointwise_common import as_array, binary, is_int, launch
from ._strided import strided_offsets, upcast
from .creation import clone, full, to_host
from .reduce_stats import any as any_

_eq = binary("eq", result_bool=True)


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
def one_operand_kernel(a, out, n, s1, s2, s3, a0, a1, a2, a3, p, OP: tl.constexpr, IS_INT: tl.constexpr,
                       BLOCK: tl.constexpr):
    """p: round's scale (10^decimals, or -10^-decimals for negative decimals); unused by other ops."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    tl.store(out + i, _unary(x, p, OP, IS_INT).to(out.dtype.element_ty), mask=m)


@triton.jit
def two_operand_kernel(a, b, out, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, OP: tl.constexpr,
                       IS_INT: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    y = upcast(tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m))
    tl.store(out + i, _binary(x, y, OP, IS_INT).to(out.dtype.element_ty), mask=m)


def int_aware_unary(op: str, out_dtype=None, int_identity: bool = False, int_const=None):
    """The kernel `op(x)`; on integer x it returns a copy (int_identity) or a constant bool (int_const)."""
    def kernel(x: CudaArray) -> CudaArray:
        if is_int(x.dtype) and int_identity:
            return clone(x)
        if is_int(x.dtype) and int_const is not None:
            return full(x.shape, int_const, np.bool_)
        out = CudaArray.empty(x.shape, out_dtype or x.dtype)
        launch(one_operand_kernel, [x], [out], p=0.0, OP=op, IS_INT=is_int(x.dtype))
        return out

    kernel.__name__ = op
    return kernel


def int_aware_binary(op: str, bool_out: bool = False, int_divisor: bool = False):
    """The kernel `op(a, b)`; a or b may be a Python scalar. int_divisor: refuse an integer b == 0."""
    def kernel(a, b) -> CudaArray:
        like = a if isinstance(a, CudaArray) else b
        shape = like.shape
        if int_divisor and is_int(like.dtype):
            _check_int_divisor(b)
        out = CudaArray.empty(shape, np.bool_ if bool_out else like.dtype)
        launch(two_operand_kernel, [as_array(a, like, shape), as_array(b, like, shape)], [out], OP=op,
               IS_INT=is_int(like.dtype))
        return out

    kernel.__name__ = op
    return kernel


def _check_int_divisor(b) -> None:
    """PyTorch raises for an integer division by zero; numpy and the GPU would not."""
    if isinstance(b, CudaArray):
        zero = b.numel() > 0 and bool(to_host(any_(_eq(b, 0), tuple(range(b.ndim)), False)).reshape(-1)[0])
    else:
        zero = b == 0
    if zero:
        raise RuntimeError("ZeroDivisionError: integer division by zero")


def backward_kernel(op: str):
    """The kernel `op(saved, g)` of a unary function's gradient (saved: its input or output)."""
    def kernel(saved: CudaArray, g: CudaArray) -> CudaArray:
        out = CudaArray.empty(g.shape, g.dtype)
        launch(two_operand_kernel, [as_array(saved, g, g.shape), g], [out], OP=op, IS_INT=False)
        return out

    kernel.__name__ = op
    return kernel
