"""Triton kernels: elementwise arithmetic, comparisons, logical and bitwise ops for the cuda device
(strided operands, broadcast by stride 0; the ops in ops/elementwise.py).

    add sub mul div pow, eq ne lt le gt ge   the core binary kernel (_pointwise_common.py);
                                            pow computes in float64
    div_trunc floor_divide remainder fmod, logical_and/or/xor/not, bitwise_and/or/xor/not
                                            the integer-aware kernels (_int_aware.py); integer
                                            division by zero raises, as in PyTorch
    pow_backward_base(a, b, g)              g b a^(b-1), 0 where b == 0
    pow_backward_exponent(a, b, y, g)       g y ln a, 0 where a == 0 and b >= 0
                                            (both the several-operand kernel, _pointwise_common.py)
Half-precision inputs compute in float32. A Python scalar operand becomes a 1-element device
array broadcast by stride 0, so float64 values keep every digit.
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_elementwise.py -k cuda
"""
from __future__ import annotations

import numpy as np

from ..cuda_array import CudaArray
from ._int_aware import int_aware_binary, int_aware_unary
from ._pointwise_common import binary, several_operands

__all__ = ["add", "sub", "mul", "div", "pow", "eq", "ne", "lt", "le", "gt", "ge", "div_trunc", "floor_divide",
           "remainder", "fmod", "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and",
           "bitwise_or", "bitwise_xor", "bitwise_not", "pow_backward_base", "pow_backward_exponent"]

add, sub, mul, div, pow = (binary(op) for op in ("add", "sub", "mul", "div", "pow"))
eq, ne, lt, le, gt, ge = (binary(op, result_bool=True) for op in ("eq", "ne", "lt", "le", "gt", "ge"))

div_trunc, floor_divide, remainder, fmod = (int_aware_binary(op, int_divisor=True) for op in
                                            ("div_trunc", "floor_divide", "remainder", "fmod"))
logical_and, logical_or, logical_xor = (int_aware_binary(op, bool_out=True) for op in
                                        ("logical_and", "logical_or", "logical_xor"))
bitwise_and, bitwise_or, bitwise_xor = (int_aware_binary(op) for op in
                                        ("bitwise_and", "bitwise_or", "bitwise_xor"))
logical_not = int_aware_unary("logical_not", np.bool_)
_bitwise_not = int_aware_unary("bitwise_not")


def bitwise_not(x: CudaArray) -> CudaArray:
    """~x (logical not for bool)."""
    return logical_not(x) if x.dtype == np.bool_ else _bitwise_not(x)


def pow_backward_base(a, b, g: CudaArray) -> CudaArray:
    """g b a^(b-1), 0 where b == 0 (even at a == 0)."""
    out = CudaArray.empty(g.shape, g.dtype)
    several_operands("pow_backward_base", [a, b, g], [out])
    return out


def pow_backward_exponent(a, b, out: CudaArray, g: CudaArray) -> CudaArray:
    """g a^b ln a, 0 where a == 0 and b >= 0."""
    res = CudaArray.empty(g.shape, g.dtype)
    several_operands("pow_backward_exponent", [a, b, out, g], [res])
    return res
