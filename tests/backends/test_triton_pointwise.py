"""The elementwise family beyond elementwise.py's core (pointwise.py) on the cuda device, against
PyTorch forward and backward. Without a GPU they run in Triton's interpreter: small shapes."""
import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"


def lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def test_unary_functions():
    check_op([(3, 5)], lambda x: x.exp2() + x.expm1() + x.square() + x.tan() + x.erf() + x.abs(), device=CUDA,
             noncontiguous=True)
    check_op([(3, 5)], lambda x: x.log2() + x.log10() + x.log1p() + x.sqrt() + x.rsqrt() + x.reciprocal(),
             device=CUDA, low=0.2, high=3.0)
    check_op(None, lambda x: x.expm1() + x.log1p(), inputs=[np.array([1e-9, -3e-8, 0.0, 1e-3], np.float32)],
             device=CUDA)
    check_op(None, lambda x: x.expm1() + x.log1p(), inputs=[np.array([1e-12, -3e-15, 0.5], np.float64)],
             device=CUDA, dtype="float64")


def test_rounding_and_sign():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1.26, -3.7, 0.0, 7.0], np.float32)
    for fn in (lambda t: t.round(), lambda t: t.trunc(), lambda t: t.frac(), lambda t: t.sign(),
               lambda t: t.floor() + t.ceil()):
        check_op(None, fn, inputs=[x], device=CUDA)
    check_op(None, lambda t: t.round(decimals=1), inputs=[x], device=CUDA, grad=False)
    check_op(None, lambda t: t.round(decimals=-1), inputs=[x * 10], device=CUDA, grad=False)


def test_nan_inf_predicates_and_nan_to_num():
    x = np.array([np.nan, np.inf, -np.inf, 1.0, -2.0], np.float32)
    check_op(None, lambda t: t.isnan() | t.isinf() & ~t.isfinite(), inputs=[x], device=CUDA, grad=False)
    check_op(None, lambda t: t.nan_to_num(), inputs=[x], device=CUDA)
    check_op(None, lambda t: t.nan_to_num(nan=1.5, posinf=9.0, neginf=-9.0), inputs=[x.astype(np.float64)],
             dtype="float64", device=CUDA)


def test_integer_division_family():
    a = np.array([-7, 7, -7, 7, 5, -6, 3, 0], np.int64)
    b = np.array([2, 2, -2, -2, 3, 4, -5, 7], np.int64)
    for name in ("floor_divide", "remainder", "fmod"):
        check_op(None, lambda p, q, name=name: getattr(lib(p), name)(p, q), inputs=[a, b], dtype="int64", device=CUDA)
    check_op(None, lambda p, q: lib(p).div(p, q, rounding_mode="trunc"), inputs=[a, b], dtype="int64", device=CUDA)
    with pytest.raises(RuntimeError, match="division by zero"):
        tinyml.tensor(a, device=CUDA) // tinyml.tensor(b * 0, device=CUDA)


def test_float_division_family():
    check_op([(4, 5), (4, 5)], lambda p, q: lib(p).remainder(p, q) + lib(p).fmod(p, q), device=CUDA, grad=False,
             low=-3, high=3)
    check_op([(4, 5), (5,)], lambda p, q: p // q + lib(p).div(p, q, rounding_mode="trunc"), device=CUDA,
             grad=False, low=0.3, high=3)


def test_logical_and_bitwise():
    a, b = np.array([0, 3, 5, -1], np.int64), np.array([1, 6, 0, -1], np.int64)
    check_op(None, lambda p, q: (p & q) | (p ^ q) | ~p, inputs=[a, b], dtype="int64", device=CUDA)
    check_op(None, lambda p, q: lib(p).logical_xor(p, q) | lib(p).logical_and(p, q) | lib(p).logical_or(p, q)
             | lib(p).logical_not(p), inputs=[a, b], dtype="int64", device=CUDA)


def test_clamp_minmax_masked_fill():
    check_op([(3, 4)], lambda x: x.clamp(-0.5, 0.7) + x.clamp(min=0.1) + x.clamp(max=0.2), device=CUDA)
    check_op([(3, 4), (3, 4), (4,)], lambda x, lo, hi: lib(x).clamp(x, lo, hi), device=CUDA)
    check_op([(3, 4), (4,)], lambda a, b: lib(a).maximum(a, b) + lib(a).minimum(a, b), device=CUDA)
    ties = np.array([1.0, 2.0, 3.0], np.float32)
    check_op(None, lambda a, b: lib(a).maximum(a, b), inputs=[ties, ties[::-1].copy()], device=CUDA)
    check_op([(3, 4)], lambda x: x.masked_fill(x > 0, -1.5), device=CUDA)


def test_lerp_addcmul_addcdiv():
    check_op([(3, 4), (3, 4), (4,)], lambda a, b, w: lib(a).lerp(a, b, w), device=CUDA)
    check_op([(3, 4), (3, 4)], lambda a, b: lib(a).lerp(a, b, 0.75), device=CUDA)
    check_op([(3, 4), (3, 4), (4,)], lambda x, a, b: lib(x).addcmul(x, a, b, value=0.5), device=CUDA)
    check_op([(3, 4), (3, 4), (4,)], lambda x, a, b: lib(x).addcdiv(x, a, b, value=-2), device=CUDA, low=0.5, high=2)


def test_remaining_core_kernels():
    """Kernels of elementwise.py / creation.py / activation.py that no other test reaches."""
    check_op([(3, 4), (4,)], lambda a, b: lib(a).where((a < b) | (a <= b * 0.5) | (a >= b + 1), a.sin(), b.cos()),
             device=CUDA)
    check_op([(3, 4)], lambda x: lib(x).nn.functional.hardtanh(x, -0.5, 0.7), device=CUDA)
    check_op([(3, 4)], lambda x: x.T.contiguous() * 2, device=CUDA)
    x = tinyml.arange(12, device=CUDA).reshape(3, 4)
    assert x[1:].storage_offset() == 4
    assert tinyml.empty(2, 3, device=CUDA).shape == (2, 3)
    np.testing.assert_array_equal(tinyml.eye(3, 4, device=CUDA).cpu().numpy(), np.eye(3, 4, dtype=np.float32))
    np.testing.assert_allclose(tinyml.linspace(0, 1, 5, device=CUDA).cpu().numpy(), np.linspace(0, 1, 5), rtol=1e-6)
