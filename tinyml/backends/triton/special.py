"""Triton kernels of the special-function family, for the cuda device: every value is computed in
float64 (16-bit and float32 inputs are widened, the result is narrowed on store), from exp, log,
sqrt and erf alone, since libdevice's asin/atan/... are unavailable in Triton's interpreter.

    asin acos atan sinh cosh asinh acosh atanh erfinv   one strided kernel, the op a constexpr string
    atan2 hypot copysign                                 one strided two-operand kernel

    atan       Cephes' atan: reduction to |t| <= 0.66 (t, or pi/4 + atan((t-1)/(t+1)), or
               pi/2 + atan(-1/t)) and a rational P4/Q5 in t^2, double precision
    atan2      atan(y / x) moved to the quadrant of (x, y); the infinities and zeros as C's atan2
    asin acos  atan2(x, sqrt((1-x)(1+x))) and atan2(sqrt((1-x)(1+x)), x)
    sinh cosh  from expm1 (Kahan's form) below |x| = 20, e^(|x| - ln 2) above
    asinh      log1p(|x| + x^2 / (1 + sqrt(1 + x^2))), ln|x| + ln 2 past 1e150; acosh alike
    atanh      log1p(2x / (1 - x)) / 2
    erfinv     Giles' approximation, then two Newton steps on erf
    hypot      max * sqrt(1 + (min/max)^2); inf if either is inf, even beside NaN (as C's hypot)
    copysign   |x| with y's sign bit
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_special.py -k cuda
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._pointwise_common import launch
from ._strided import strided_offsets, upcast

__all__ = ["asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erfinv", "atan2", "hypot",
           "copysign"]

@triton.jit
def _log1p(x):
    """ln(1 + x) without cancellation near 0 (Kahan: ln(u) x / (u - 1) with u = 1 + x)."""
    u = 1.0 + x
    d = tl.where(u == 1.0, 1.0, u - 1.0)
    r = tl.where(u == 1.0, x, tl.log(u) * (x / d))
    return tl.where(x == float("inf"), x, r)


@triton.jit
def _expm1(x):
    """e^x - 1 without cancellation near 0 (Kahan: (u - 1) x / ln u with u = e^x)."""
    u = tl.exp(x)
    lu = tl.where((u == 1.0) | (u == 0.0), 1.0, tl.log(u))
    r = tl.where(u == 1.0, x, (u - 1.0) * (x / lu))
    r = tl.where(u - 1.0 == -1.0, -1.0, r)
    return tl.where(x == float("inf"), x, r)


@triton.jit
def _atan(x):
    a = tl.abs(x)
    big = a > 2.414213562373095  # tan(3 pi / 8)
    mid = (a > 0.66) & (~big)
    t = tl.where(big, -1.0 / a, tl.where(mid, (a - 1.0) / (a + 1.0), a))
    # where() of two float literals would be float32: each constant is added to a float64 zero
    zero = tl.zeros_like(a)
    base = tl.where(big, zero + 1.5707963267948966, tl.where(mid, zero + 0.7853981633974483, zero))
    more = tl.where(big, zero + 6.123233995736766e-17, tl.where(mid, zero + 3.061616997868383e-17, zero))
    z = t * t
    p = (((-8.750608600031904122785e-1 * z - 1.615753718733365076637e1) * z - 7.500855792314704667340e1) * z
         - 1.228866684490136173410e2) * z - 6.485021904942025371773e1
    q = ((((z + 2.485846490142306297962e1) * z + 1.650270098316988542046e2) * z + 4.328810604912902668951e2)
         * z + 4.853903996359136964868e2) * z + 1.945506571482613964425e2
    r = base + (t * (z * p / q) + t + more)
    return tl.where(x < 0, -r, r)


@triton.jit
def _atan2(y, x):
    # the sign bits, so that -0.0 picks its side as in C's atan2 (atan2(0, -0) = pi, atan2(-0, -1) = -pi)
    x_neg = x.to(tl.int64, bitcast=True) < 0
    y_neg = y.to(tl.int64, bitcast=True) < 0
    r = _atan(y / x)  # x == +-0, y != 0: y / x is +-inf and atan gives +-pi/2
    r = tl.where(x_neg, tl.where(y_neg, r - 3.141592653589793, r + 3.141592653589793), r)
    zero = tl.zeros_like(r)  # where() of two float literals would be float32
    both_zero = (x == 0) & (y == 0)
    pi = tl.where(y_neg, zero - 3.141592653589793, zero + 3.141592653589793)
    r = tl.where(both_zero, tl.where(x_neg, pi, y), r)
    both_inf = (tl.abs(x) == float("inf")) & (tl.abs(y) == float("inf"))
    diag = tl.where(x > 0, zero + 0.7853981633974483, zero + 2.356194490192345)
    r = tl.where(both_inf, tl.where(y < 0, -diag, diag), r)
    return tl.where((x != x) | (y != y), float("nan"), r)


@triton.jit
def _erfinv(a):
    w = -tl.log((1.0 - a) * (1.0 + a))
    central = w < 5.0
    t = tl.where(central, w - 2.5, tl.sqrt(tl.where(central, 0.0, w)) - 3.0)
    p = tl.where(central, 2.81022636e-08, -0.000200214257)
    p = p * t + tl.where(central, 3.43273939e-07, 0.000100950558)
    p = p * t + tl.where(central, -3.5233877e-06, 0.00134934322)
    p = p * t + tl.where(central, -4.39150654e-06, -0.00367342844)
    p = p * t + tl.where(central, 0.00021858087, 0.00573950773)
    p = p * t + tl.where(central, -0.00125372503, -0.0076224613)
    p = p * t + tl.where(central, -0.00417768164, 0.00943887047)
    p = p * t + tl.where(central, 0.246640727, 1.00167406)
    p = p * t + tl.where(central, 1.50140941, 2.83297682)
    y = p * a
    y = y - (tl.erf(y) - a) / (1.1283791670955126 * tl.exp(-y * y))
    y = y - (tl.erf(y) - a) / (1.1283791670955126 * tl.exp(-y * y))
    y = tl.where(tl.abs(a) == 1.0, tl.where(a > 0, float("inf"), float("-inf")), y)
    return tl.where(tl.abs(a) > 1.0, float("nan"), y)


@triton.jit
def _special_unary(x, OP: tl.constexpr):
    a = tl.abs(x)
    if OP == "atan":
        r = _atan(x)
    elif OP == "asin":
        r = _atan2(x, tl.sqrt((1.0 - x) * (1.0 + x)))
    elif OP == "acos":
        r = _atan2(tl.sqrt((1.0 - x) * (1.0 + x)), x)
    elif OP == "sinh":
        e = _expm1(a)
        r = tl.where(a > 20.0, tl.exp(a - 0.6931471805599453), 0.5 * (e + e / (e + 1.0)))
        r = tl.where(x < 0, -r, r)
    elif OP == "cosh":
        r = tl.where(a > 20.0, tl.exp(a - 0.6931471805599453), 0.5 * (tl.exp(a) + tl.exp(-a)))
    elif OP == "asinh":
        small = _log1p(a + a * a / (1.0 + tl.sqrt(1.0 + a * a)))
        r = tl.where(a > 1e150, tl.log(a) + 0.6931471805599453, small)
        r = tl.where(x < 0, -r, r)
    elif OP == "acosh":
        small = _log1p((x - 1.0) + tl.sqrt((x - 1.0) * (x + 1.0)))
        r = tl.where(x > 1e150, tl.log(x) + 0.6931471805599453, small)
        r = tl.where(x < 1.0, float("nan"), r)  # (x - 1)(x + 1) > 0 again for x < -1
    elif OP == "atanh":
        r = 0.5 * _log1p(2.0 * x / (1.0 - x))
    else:  # erfinv
        r = _erfinv(x)
    return r


@triton.jit
def _special_binary(x, y, OP: tl.constexpr):
    if OP == "atan2":
        r = _atan2(x, y)
    elif OP == "hypot":
        a = tl.abs(x)
        b = tl.abs(y)
        m = tl.where(a > b, a, b)
        n = tl.where(a > b, b, a)
        q = n / tl.where(m == 0, 1.0, m)
        r = m * tl.sqrt(1.0 + q * q)
        r = tl.where((x != x) | (y != y), float("nan"), r)
        r = tl.where((a == float("inf")) | (b == float("inf")), float("inf"), r)
    else:  # copysign: y's sign bit (it survives the widening to float64, -0.0 and NaN included)
        negative = y.to(tl.int64, bitcast=True) < 0
        r = tl.where(negative, -tl.abs(x), tl.abs(x))
    return r


@triton.jit
def _unary_kernel(a, out, n, s1, s2, s3, a0, a1, a2, a3, OP: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m)).to(tl.float64)
    tl.store(out + i, _special_unary(x, OP).to(out.dtype.element_ty), mask=m)


@triton.jit
def _binary_kernel(a, b, out, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, OP: tl.constexpr,
                   BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m)).to(tl.float64)
    y = upcast(tl.load(b + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), mask=m)).to(tl.float64)
    tl.store(out + i, _special_binary(x, y, OP).to(out.dtype.element_ty), mask=m)


def _unary(op: str):
    def kernel(x: CudaArray) -> CudaArray:
        out = CudaArray.empty(x.shape, x.dtype)
        launch(_unary_kernel, [x], [out], OP=op)
        return out

    kernel.__name__ = op
    return kernel


def _binary(op: str):
    def kernel(a: CudaArray, b: CudaArray) -> CudaArray:
        out = CudaArray.empty(a.shape, a.dtype)
        launch(_binary_kernel, [a, b], [out], OP=op)
        return out

    kernel.__name__ = op
    return kernel


asin, acos, atan, sinh, cosh, asinh, acosh, atanh, erfinv = (
    _unary(op) for op in ("asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erfinv"))
atan2, hypot, copysign = (_binary(op) for op in ("atan2", "hypot", "copysign"))
