"""Special functions (ops/special.py): forward and backward against PyTorch, special values, gradcheck
in float64, double backward, and every backend of the family (reference, cpu device, Triton)."""
import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()

# name, input range inside the domain (away from the poles, where float32 gradients blow up)
UNARY = [("asin", -0.9, 0.9), ("acos", -0.9, 0.9), ("atan", -4, 4), ("sinh", -3, 3), ("cosh", -3, 3),
         ("asinh", -4, 4), ("acosh", 1.1, 5), ("atanh", -0.9, 0.9), ("erfinv", -0.95, 0.95),
         ("logit", 0.05, 0.95), ("deg2rad", -200, 200), ("rad2deg", -4, 4)]
ALIASES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh", "arccosh": "acosh",
           "arctanh": "atanh", "arctan2": "atan2"}
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 1.5, -1.5, np.inf, -np.inf, np.nan, 1e-30, -1e30, 0.5, -2.5, 700.0,
                    1e-8, -0.999999], np.float32)
PAIRS = np.array([[0.0, 0.0], [0.0, -0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, -1.0], [-0.0, -1.0], [np.inf, 1.0],
                  [1.0, np.inf], [-np.inf, np.inf], [np.inf, -np.inf], [-np.inf, -np.inf], [np.nan, 1.0],
                  [2.0, np.nan], [np.inf, np.nan], [3.0, -4.0], [-1e-30, 1e30], [1e30, 1e30], [-2.0, -0.0]],
                 np.float32)


@pytest.mark.parametrize("name,low,high", UNARY, ids=[u[0] for u in UNARY])
def test_unary_matches_torch(kernels, name, low, high):
    check_op([(3, 5)], lambda x: getattr(x, name)(), low=low, high=high)
    check_op([(4,)], lambda x: getattr(tinyml, name)(x) if isinstance(x, tinyml.Tensor) else
             getattr(torch, name)(x), low=low, high=high, dtype="float64")


@pytest.mark.parametrize("name", ["asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erfinv",
                                  "logit"])
def test_special_values_match_torch(kernels, name):
    check_op([], lambda x: getattr(x, name)(), inputs=[SPECIAL.copy()], grad=False)


@pytest.mark.parametrize("name", ["atan2", "hypot", "copysign", "xlogy"])
def test_binary_special_values_match_torch(kernels, name):
    check_op([], lambda a, b: getattr(a, name)(b), inputs=[PAIRS[:, 0].copy(), PAIRS[:, 1].copy()],
             grad=False)


@pytest.mark.parametrize("name", ["atan2", "hypot", "copysign", "xlogy"])
def test_binary_matches_torch_with_broadcasting(kernels, name):
    check_op([(3, 4), (4,)], lambda a, b: getattr(a, name)(b), low=0.2, high=2.0)
    check_op([(2, 1), (1, 3)], lambda a, b: getattr(a, name)(-b), low=0.2, high=2.0, dtype="float64")


def test_scalars_and_integers_follow_torch():
    check_op([(5,)], lambda x: x.asin(), dtype="int64", low=-1, high=1)
    check_op([(5,)], lambda x: x.atan(), dtype="bool")
    check_op([(5,)], lambda x: tinyml.xlogy(2, x) if isinstance(x, tinyml.Tensor) else torch.xlogy(2, x),
             low=0.1, high=3)
    check_op([(5,)], lambda x: x.xlogy(3.0), low=-2, high=2)
    check_op([(5,)], lambda x: x.copysign(-1.0), low=-2, high=2)
    check_op([(5,)], lambda x: x.logit(eps=0.2), low=0.0, high=1.0)
    check_op([(4,)], lambda x: x.atan2(x.int().to(x.dtype) + 1), low=-3, high=3)
    assert tinyml.atan2(tinyml.tensor([1, 2]), tinyml.tensor([3, 4])).dtype is tinyml.float32


def test_xlogy_zero_times_log_zero_and_its_gradients():
    x, y = np.array([0.0, 0.0, 2.0, 0.0]), np.array([0.0, 3.0, 0.5, np.nan])
    check_op([], lambda a, b: a.xlogy(b), inputs=[x, y], dtype="float64")


def test_errors_name_the_arguments():
    with pytest.raises(TypeError, match="atan2.*'other' must be Tensor, not float"):
        tinyml.atan2(tinyml.ones(2), 1.0)
    with pytest.raises(RuntimeError, match=r"\(2,\) and \(3,\)"):
        tinyml.hypot(tinyml.ones(2), tinyml.ones(3))
    for name in ("hypot", "logaddexp", "logaddexp2"):
        with pytest.raises(RuntimeError, match=f"{name}: not implemented for integer.*int64 and .*int64"):
            getattr(tinyml, name)(tinyml.tensor([1, 2]), tinyml.tensor([3, 4]))


def test_aliases():
    for alias, name in ALIASES.items():
        assert getattr(tinyml, alias) is getattr(tinyml, name)
        assert getattr(tinyml.Tensor, alias) is getattr(tinyml.Tensor, name)


def test_gradcheck_float64():
    rng = np.random.default_rng(4)
    x = tinyml.tensor(rng.uniform(-0.8, 0.8, (2, 3)), requires_grad=True)
    y = tinyml.tensor(rng.uniform(0.5, 2.0, (2, 3)), requires_grad=True)
    for fn in (lambda t: t.asin() + t.acos() * t.atan(), lambda t: t.sinh() * t.cosh() + t.asinh(),
               lambda t: t.atanh() + t.erfinv() + (t + 2).acosh(), lambda t: ((t + 1) / 2).logit()):
        assert gradcheck(fn, [x])
    for fn in (tinyml.atan2, tinyml.hypot, tinyml.xlogy, lambda a, b: tinyml.copysign(a, b - 1)):
        assert gradcheck(fn, [x, y])


@pytest.mark.parametrize("name", ["asin", "acos", "atan", "sinh", "cosh", "asinh", "atanh", "erfinv"])
def test_double_backward_matches_torch(name):
    a = np.random.default_rng(6).uniform(-0.6, 0.6, (3, 4))
    x, t = tinyml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (g,) = tinyml.autograd.grad((getattr(x, name)() ** 2).sum(), x, create_graph=True)
    (gt,) = torch.autograd.grad((getattr(t, name)() ** 2).sum(), t, create_graph=True)
    tinyml.testing.assert_close(g, gt, msg="first order:")
    (g * g).sum().backward()
    (gt * gt).sum().backward()
    tinyml.testing.assert_close(x.grad, t.grad, msg="second order:")


def test_erfinv_is_erfs_inverse_to_double_precision():
    p = np.concatenate([np.linspace(-0.999999, 0.999999, 201), [1e-12, -1e-300]])
    y = tinyml.erfinv(tinyml.tensor(p))
    np.testing.assert_allclose(y.erf().numpy(), p, rtol=1e-14, atol=1e-15)


# -- every backend of the family ------------------------------------------------------------------
def test_unary_kernels_on_every_backend(backend_device):
    check_op([(3, 5)], lambda x: x.asin() + x.acos() + x.atan() + x.atanh() + x.erfinv(), low=-0.9, high=0.9,
             device=backend_device, noncontiguous=True)
    check_op([(3, 5)], lambda x: x.sinh() + x.cosh() + x.asinh() + (x.abs() + 1).acosh(), low=-4, high=4,
             device=backend_device, dtype="float64")
    for name in ("asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erfinv"):
        check_op([], lambda x: getattr(x, name)(), inputs=[SPECIAL.copy()], grad=False, device=backend_device)
    check_op([(6,)], lambda x: x.atan() + x.sinh(), dtype="float16", low=-2, high=2, device=backend_device)


def test_atan_and_erfinv_reach_double_precision(backend_device):
    x = np.concatenate([np.linspace(-30, 30, 97), [1e-300, 0.4142, 0.66, 0.67, 2.41, 2.42, 1e300]])
    got = tinyml.tensor(x, device=backend_device).atan().cpu().numpy()
    np.testing.assert_allclose(got, np.arctan(x), rtol=2e-16, atol=0)
    p = np.linspace(-0.9999, 0.9999, 101)
    got = tinyml.tensor(p, device=backend_device).erfinv()
    np.testing.assert_allclose(got.cpu().erf().numpy(), p, rtol=1e-14, atol=1e-15)


def test_binary_kernels_on_every_backend(backend_device):
    for name in ("atan2", "hypot", "copysign"):
        check_op([], lambda a, b: getattr(a, name)(b), inputs=[PAIRS[:, 0].copy(), PAIRS[:, 1].copy()],
                 grad=False, device=backend_device)
        check_op([(3, 4), (3, 1)], lambda a, b: getattr(a, name)(b), low=-2, high=2, device=backend_device,
                 noncontiguous=True)
    check_op([(5,), (5,)], lambda a, b: a.atan2(b) * a.hypot(b), dtype="float64", device=backend_device)


# -- compositions: logaddexp, logaddexp2, sinc, signbit, heaviside -----------------------------------
def test_logaddexp_matches_torch_with_infinities():
    check_op([], lambda a, b: a.logaddexp(b), inputs=[PAIRS[:, 0].copy(), PAIRS[:, 1].copy()], grad=False)
    check_op([], lambda a, b: a.logaddexp2(b), inputs=[PAIRS[:, 0].copy(), PAIRS[:, 1].copy()], grad=False)
    check_op([(3, 4), (4,)], lambda a, b: a.logaddexp(b * 30))
    check_op([(3, 4), (3, 1)], lambda a, b: a.logaddexp2(b), dtype="float64")


def test_sinc_signbit_heaviside_match_torch():
    check_op([], lambda x: x.sinc(), inputs=[SPECIAL.copy()], grad=False)
    check_op([(3, 5)], lambda x: x.sinc(), low=-3, high=3)
    check_op([], lambda x: x.sinc(), inputs=[np.array([0.0, 1.0, -0.5])])  # the gradient at 0 is 0
    check_op([], lambda x: x.signbit(), inputs=[SPECIAL.copy()], grad=False)
    check_op([(6,)], lambda x: x.signbit(), dtype="int64", low=-3, high=3)
    check_op([], lambda x, v: x.heaviside(v), inputs=[SPECIAL.copy(), np.array([0.5], np.float32)],
             grad=False)
    with pytest.raises(RuntimeError, match="different dtypes.*float32.*float64"):
        tinyml.ones(2).heaviside(tinyml.ones(1, dtype=tinyml.float64))


def test_composition_gradcheck():
    rng = np.random.default_rng(7)
    a = tinyml.tensor(rng.uniform(-2, 2, (2, 3)), requires_grad=True)
    b = tinyml.tensor(rng.uniform(-2, 2, (2, 3)), requires_grad=True)
    assert gradcheck(tinyml.logaddexp, [a, b]) and gradcheck(tinyml.logaddexp2, [a, b])
    assert gradcheck(tinyml.sinc, [a])
