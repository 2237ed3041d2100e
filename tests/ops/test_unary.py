"""Unary ops: forward and backward against PyTorch, dtype rules, special values, on reference and
cpu kernels, and on every backend of the family (backend_device: the numpy reference, the cpu
device's kernels, the Triton kernels)."""
import math

import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

# name, input range: each op sees inputs inside its domain
backend_device = backend_device_fixture()
FLOAT_OPS = [
    ("neg", -2, 2), ("abs", -2, 2), ("exp", -2, 2), ("exp2", -2, 2), ("expm1", -2, 2), ("log", 0.1, 3),
    ("log2", 0.1, 3), ("log10", 0.1, 3), ("log1p", -0.5, 2), ("sqrt", 0.1, 3), ("rsqrt", 0.1, 3),
    ("square", -2, 2), ("reciprocal", 0.5, 2), ("sin", -3, 3), ("cos", -3, 3), ("tan", -1.2, 1.2),
    ("tanh", -3, 3), ("sigmoid", -6, 6), ("relu", -2, 2), ("erf", -2, 2), ("sign", -2, 2), ("floor", -3, 3),
    ("ceil", -3, 3), ("round", -3, 3), ("trunc", -3, 3), ("frac", -3, 3),
]


@pytest.mark.parametrize("name,low,high", FLOAT_OPS, ids=[o[0] for o in FLOAT_OPS])
def test_float_op_matches_torch(kernels, name, low, high):
    def fn(x):
        return getattr(x, name)()

    check_op([(3, 5)], fn, low=low, high=high)
    check_op([()], fn, low=low, high=high)


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "sqrt", "abs", "relu", "erf"])
def test_noncontiguous_and_float64(kernels, name):
    def fn(x):
        return getattr(x, name)()

    check_op([(4, 6)], fn, low=0.1, high=2, noncontiguous=True)
    check_op([(2, 3, 4)], fn, low=0.1, high=2, dtype="float64")


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "sigmoid", "tanh", "erf", "exp2", "log1p",
                                  "rsqrt", "reciprocal"])
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_integer_inputs_promote_to_default_float(name, dtype):
    check_op([(7,)], lambda x: getattr(x, name)(), dtype=dtype, low=1, high=5)


def test_integer_inputs_follow_the_default_dtype():
    tinyml.set_default_dtype(tinyml.float64)
    try:
        assert tinyml.exp(tinyml.tensor([1, 2])).dtype is tinyml.float64
        assert (tinyml.tensor([1, 2]) / 2).dtype is tinyml.float64
    finally:
        tinyml.set_default_dtype(tinyml.float32)


@pytest.mark.parametrize("name", ["abs", "neg", "sign", "square", "relu", "floor", "ceil", "round", "trunc"])
def test_integer_inputs_keep_their_dtype(name):
    check_op([(2, 5)], lambda x: getattr(x, name)(), dtype="int32", low=-4, high=4)
    check_op([(5,)], lambda x: getattr(x, name)(), dtype="int64", low=-4, high=4)


def test_bool_inputs_follow_torch():
    check_op([(6,)], lambda x: x.sign(), dtype="bool")
    check_op([(6,)], lambda x: x.square(), dtype="bool")  # squares to int64
    for name in ("abs", "neg", "relu", "floor"):
        with pytest.raises(RuntimeError, match="(?i)bool"):
            getattr(tinyml.tensor([True, False]), name)()
    with pytest.raises(RuntimeError, match="floating point.*int64"):
        tinyml.tensor([1, 2]).frac()


@pytest.mark.parametrize("decimals", [0, 1, 2, -1])
def test_round_decimals(kernels, decimals):
    check_op([(4, 5)], lambda x: x.round(decimals=decimals), low=-30, high=30)


def test_half_dtypes(kernels):
    for dtype in ("float16", "bfloat16"):
        for name in ("exp", "tanh", "sigmoid", "sqrt", "floor", "erf"):
            check_op([(3, 4)], lambda x, name=name: getattr(x, name)(), dtype=dtype, low=0.1, high=2)


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-30, -1e30, 0.5, -2.5, 700.0])


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "rsqrt", "reciprocal", "sigmoid", "tanh", "sign",
                                  "abs", "expm1", "log1p", "erf", "round", "isnan", "isinf", "isfinite",
                                  "nan_to_num"])
def test_special_values_match_torch(kernels, name):
    check_op([], lambda x: getattr(x, name)(), inputs=[SPECIAL.copy()], grad=False)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_nan_to_num(kernels, dtype):
    arr = np.array([[1.5, np.nan, np.inf], [-np.inf, -2.0, 0.0]])
    check_op([], lambda x: x.nan_to_num(), inputs=[arr], dtype=dtype, grad=False)  # max * w would overflow
    check_op([], lambda x: x.nan_to_num(nan=1.0, posinf=2.0, neginf=-3.0), inputs=[arr], dtype=dtype)
    check_op([], lambda x: tinyml.nan_to_num(x, 0.5), lambda x: torch.nan_to_num(x, 0.5),
             inputs=[arr], dtype=dtype, grad=False)


def test_is_predicates_on_ints_and_bools():
    for dtype in ("int32", "bool"):
        for name in ("isnan", "isinf", "isfinite"):
            check_op([(5,)], lambda x, name=name: getattr(x, name)(), dtype=dtype)


def test_functions_and_aliases():
    x = tinyml.tensor([-1.5, 0.25, 2.0])
    assert tinyml.negative(x).tolist() == (-x).tolist()
    assert tinyml.absolute(x).tolist() == [1.5, 0.25, 2.0]
    assert tinyml.fix(x).tolist() == [-1.0, 0.0, 2.0]
    assert (-x).dtype is tinyml.float32 and abs(x).tolist() == [1.5, 0.25, 2.0]


def test_gradcheck_float64():
    x = tinyml.tensor(np.random.default_rng(3).uniform(0.2, 1.5, (2, 3)), requires_grad=True)
    for fn in (lambda t: t.log().tanh(), lambda t: t.sqrt().sigmoid() * t.erf(),
               lambda t: t.rsqrt() + t.tan(), lambda t: t.expm1() * t.log1p() + t.exp2(),
               lambda t: t.reciprocal().sin().cos()):
        assert gradcheck(fn, [x])


def test_erf_precision_float64():
    x = np.linspace(-5, 5, 101)
    got = tinyml.erf(tinyml.tensor(x)).numpy()
    np.testing.assert_allclose(got, [math.erf(v) for v in x], rtol=1e-14, atol=1e-15)


def test_relu_backward_at_zero_is_zero(kernels):
    x = tinyml.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    x.relu().sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


def test_output_saved_then_modified_raises():
    x = tinyml.randn(3, requires_grad=True)
    y = x.exp()
    z = y * 2
    y._version[0] += 1  # as an in-place write would
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.sum().backward()


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "exp", "sqrt", "rsqrt", "reciprocal", "tan", "erf",
                                  "abs", "relu", "log", "sin", "expm1", "log1p", "square", "nan_to_num"])
def test_double_backward_matches_torch(kernels, name):
    """create_graph=True: each derivative is itself differentiable (second order against torch's)."""
    a = np.random.default_rng(6).uniform(0.2, 1.2, (3, 4))
    x, t = tinyml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (g,) = tinyml.autograd.grad((getattr(x * 1.5, name)() ** 2).sum(), x, create_graph=True)
    (gt,) = torch.autograd.grad((getattr(t * 1.5, name)() ** 2).sum(), t, create_graph=True)
    tinyml.testing.assert_close(g, gt, msg="first order:")
    (g * g).sum().backward()
    (gt * gt).sum().backward()
    tinyml.testing.assert_close(x.grad, t.grad, msg="second order:")


# -- every backend of the family ------------------------------------------------------------------
def test_unary_chain_noncontiguous(backend_device):
    check_op([(4, 6)], lambda x: (x.tanh() + x.sigmoid() * x.exp() - x.relu()).T, device=backend_device,
             noncontiguous=True)
    check_op([(5,)], lambda x: x.log() * 2, device=backend_device, low=0.1, high=3.0)


def test_unary_functions_on_every_backend(backend_device):
    check_op([(3, 5)], lambda x: x.exp2() + x.expm1() + x.square() + x.tan() + x.erf() + x.abs(),
             device=backend_device, noncontiguous=True)
    check_op([(3, 5)], lambda x: x.log2() + x.log10() + x.log1p() + x.sqrt() + x.rsqrt() + x.reciprocal(),
             device=backend_device, low=0.2, high=3.0)
    check_op(None, lambda x: x.expm1() + x.log1p(), inputs=[np.array([1e-9, -3e-8, 0.0, 1e-3], np.float32)],
             device=backend_device)
    check_op(None, lambda x: x.expm1() + x.log1p(), inputs=[np.array([1e-12, -3e-15, 0.5], np.float64)],
             device=backend_device, dtype="float64")


def test_rounding_and_sign_on_every_backend(backend_device):
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1.26, -3.7, 0.0, 7.0], np.float32)
    for fn in (lambda t: t.round(), lambda t: t.trunc(), lambda t: t.frac(), lambda t: t.sign(),
               lambda t: t.floor() + t.ceil()):
        check_op(None, fn, inputs=[x], device=backend_device)
    check_op(None, lambda t: t.round(decimals=1), inputs=[x], device=backend_device, grad=False)
    check_op(None, lambda t: t.round(decimals=-1), inputs=[x * 10], device=backend_device, grad=False)


def test_nan_inf_predicates_and_nan_to_num_on_every_backend(backend_device):
    x = np.array([np.nan, np.inf, -np.inf, 1.0, -2.0], np.float32)
    check_op(None, lambda t: t.isnan() | t.isinf() & ~t.isfinite(), inputs=[x], device=backend_device,
             grad=False)
    check_op(None, lambda t: t.nan_to_num(), inputs=[x], device=backend_device)
    check_op(None, lambda t: t.nan_to_num(nan=1.5, posinf=9.0, neginf=-9.0), inputs=[x.astype(np.float64)],
             dtype="float64", device=backend_device)
