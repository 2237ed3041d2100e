"""Triton kernels: unary elementwise functions and their gradients, for the cuda device (strided
operands, 16-bit floats computed in float32).

    neg exp log tanh sigmoid relu sqrt rsqrt abs sin cos erf floor ceil   one kernel, the op a
        constexpr string (tanh in float64: libdevice is unavailable in Triton's interpreter)
    exp2 expm1 log2 log10 log1p square reciprocal tan sign round trunc frac isnan isinf isfinite
        _int_aware.py's one-operand kernel (its op table holds their formulas: expm1 and log1p
        in Kahan's forms, tan in float64, round half-to-even in float64)
    (y|x, g) backward: tanh_backward sigmoid_backward relu_backward (_pointwise_common.py's core
        binary table), abs_backward sqrt_backward rsqrt_backward reciprocal_backward tan_backward
        erf_backward nan_to_num_backward (_int_aware.py's two-operand table)
    nan_to_num(x, nan, posinf, neginf)   _pointwise_common.py's several-operand kernel
The op tables are shared by arity, so each family module here launches them with its own ops.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_unary.py -k cuda
"""
from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from ...dtypes import finfo
from ..cuda_array import CudaArray
from ._int_aware import backward_kernel, int_aware_unary, one_operand_kernel
from ._pointwise_common import binary, is_int, launch, several_operands, tanh64
from ._strided import strided_offsets, upcast
from .creation import clone, full

__all__ = ["neg", "exp", "log", "tanh", "sigmoid", "relu", "sqrt", "rsqrt", "abs", "sin", "cos", "erf",
           "floor", "ceil", "tanh_backward", "sigmoid_backward", "relu_backward", "exp2", "expm1", "log2",
           "log10", "log1p", "square", "reciprocal", "tan", "sign", "round", "trunc", "frac", "isnan",
           "isinf", "isfinite", "abs_backward", "sqrt_backward", "rsqrt_backward", "reciprocal_backward",
           "tan_backward", "erf_backward", "nan_to_num_backward", "nan_to_num"]


@triton.jit
def _unary_op(x, OP: tl.constexpr):
    if OP == "neg":
        r = -x
    elif OP == "exp":
        r = tl.exp(x)
    elif OP == "log":
        r = tl.log(x)
    elif OP == "tanh":
        r = tanh64(x)
    elif OP == "sigmoid":
        r = tl.sigmoid(x)
    elif OP == "relu":
        r = tl.where(x > 0, x, 0)
    elif OP == "sqrt":
        r = tl.sqrt(x)
    elif OP == "rsqrt":
        r = tl.rsqrt(x)
    elif OP == "abs":
        r = tl.abs(x)
    elif OP == "sin":
        r = tl.sin(x)
    elif OP == "cos":
        r = tl.cos(x)
    elif OP == "erf":
        r = tl.erf(x)
    elif OP == "floor":
        r = tl.floor(x)
    else:  # ceil
        r = tl.ceil(x)
    return r


@triton.jit
def _unary_kernel(a, out, n, s1, s2, s3, a0, a1, a2, a3, OP: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = upcast(tl.load(a + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m))
    tl.store(out + i, _unary_op(x, OP).to(out.dtype.element_ty), mask=m)


def _unary(op: str):
    def kernel(x):
        out = CudaArray.empty(x.shape, x.dtype)
        launch(_unary_kernel, [x], [out], OP=op)
        return out

    kernel.__name__ = op
    return kernel


tanh_backward, sigmoid_backward, relu_backward = (binary(op) for op in
                                                  ("tanh_backward", "sigmoid_backward", "relu_backward"))
neg, exp, log, tanh, sigmoid, relu, sqrt, rsqrt, abs, sin, cos, erf, floor, ceil = (
    _unary(op) for op in ("neg", "exp", "log", "tanh", "sigmoid", "relu", "sqrt", "rsqrt", "abs", "sin",
                          "cos", "erf", "floor", "ceil"))

# (integer-aware: _int_aware.py's one-operand kernel)
exp2, expm1, log2, log10, log1p, square, reciprocal, tan = (
    int_aware_unary(op) for op in ("exp2", "expm1", "log2", "log10", "log1p", "square", "reciprocal", "tan"))
trunc, frac = int_aware_unary("trunc", int_identity=True), int_aware_unary("frac")
isnan = int_aware_unary("isnan", np.bool_, int_const=False)
isinf = int_aware_unary("isinf", np.bool_, int_const=False)
isfinite = int_aware_unary("isfinite", np.bool_, int_const=True)
_sign = int_aware_unary("sign")


def sign(x: CudaArray) -> CudaArray:
    """-1, 0 or 1; NaN gives 0; bool stays as is."""
    return clone(x) if x.dtype == np.bool_ else _sign(x)


def round(x: CudaArray, decimals=0) -> CudaArray:
    """Round half to even at `decimals` digits after the point."""
    if is_int(x.dtype):
        return clone(x)
    out = CudaArray.empty(x.shape, x.dtype)
    p = 0.0 if decimals == 0 else (10.0 ** decimals if decimals > 0 else -(10.0 ** -decimals))
    launch(one_operand_kernel, [x], [out], p=p, OP="round", IS_INT=False)
    return out


(abs_backward, sqrt_backward, rsqrt_backward, reciprocal_backward, tan_backward, erf_backward,
 nan_to_num_backward) = (
    backward_kernel(op) for op in ("abs_backward", "sqrt_backward", "rsqrt_backward", "reciprocal_backward",
                                    "tan_backward", "erf_backward", "nan_to_num_backward"))


def nan_to_num(x: CudaArray, nan, posinf, neginf) -> CudaArray:
    """NaN -> nan, +inf -> posinf, -inf -> neginf; None: the dtype's largest / lowest value."""
    if is_int(x.dtype):
        return clone(x)
    info = finfo(x.dtype)
    vals = [float(nan), float(info.max) if posinf is None else float(posinf),
            float(info.min) if neginf is None else float(neginf)]
    out = CudaArray.empty(x.shape, x.dtype)
    several_operands("nan_to_num", [x, *(full((1,), v, x.dtype) for v in vals)], [out])
    return out
