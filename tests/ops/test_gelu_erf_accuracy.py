"""The float32 gelu (erf) kernel of csrc/activation.cpp (gelu_cdf: Phi(x) = e t Q(t)/2 with
e = exp(-x^2/2) shared by the backward's phi) against the float64 truth from math.erfc, over
[-14, 14] including the tails where 1 + erf(x/sqrt2) cancels and only an erfc form stays accurate.

Measured in session 11 (docs/cpu_speed.md "Session 11"): forward at most 9.1 ulp on [-4, 4] and
4e-6 relative beyond; backward 7.7 ulp of its larger term (Phi + x phi cancels near x = -0.75).
The bounds below leave about 2x of room for other clones (AVX2, baseline x86-64: 62 ulp in the
far tail) and compilers."""
import math

import numpy as np
import pytest
from cpu_kernel_helpers import _C, needs_C

pytestmark = needs_C

_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _truth(x):
    xd = x.astype(np.float64)
    cdf = 0.5 * _ERFC(-xd / math.sqrt(2.0)).astype(np.float64)
    pdf = np.exp(-0.5 * xd * xd) / math.sqrt(2.0 * math.pi)
    return xd, cdf, pdf


def _grid():
    rng = np.random.default_rng(16)
    return np.concatenate([np.linspace(-14, 14, 100_001), rng.standard_normal(50_000),
                           rng.uniform(-1e-3, 1e-3, 1000)]).astype(np.float32)


def _ulps(got, true):
    ulp = np.spacing(np.abs(true).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - true) / ulp


def test_forward_is_within_float32_rounding_of_the_float64_gelu():
    x = _grid()
    xd, cdf, _ = _truth(x)
    true = xd * cdf
    got = _C.gelu_forward(x, "none")
    core = np.abs(x) <= 4
    assert _ulps(got[core], true[core]).max() <= 16
    tail = ~core & (np.abs(true) > 1e-30)  # beyond: results in float32's subnormal range
    assert (np.abs(got[tail] - true[tail]) / np.abs(true[tail])).max() <= 1e-5


def test_backward_is_within_float32_rounding_of_phi_plus_x_phi():
    x = _grid()
    xd, cdf, pdf = _truth(x)
    dy = np.ones_like(x)
    got = _C.gelu_backward(x, dy, "none").astype(np.float64)
    scale = np.maximum(np.abs(cdf), np.abs(xd * pdf))  # the sum cancels at x = -0.75: ulps of the larger term
    ok = scale > 1e-30
    err = np.abs(got[ok] - (cdf + xd * pdf)[ok]) / np.spacing(scale[ok].astype(np.float32)).astype(np.float64)
    assert err.max() <= 128  # 62-64 ulp at most where e = exp(-x^2/2) is tiny (|x| > 10); 7.7 on [-4, 4]
    core = np.abs(x) <= 4
    err_core = np.abs(got[core] - (cdf + xd * pdf)[core]) / np.spacing(
        scale[core].astype(np.float32)).astype(np.float64)
    assert err_core.max() <= 16


def test_special_values_and_empty():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 3e38, -3e38, 20.0, -20.0], np.float32)
    y = _C.gelu_forward(x, "none")
    np.testing.assert_array_equal(y[:2], [np.inf, np.nan])  # gelu(-inf) = -inf * 0 = NaN, as documented
    assert np.isnan(y[2]) and y[3] == 0 and y[4] == 0 and np.signbit(y[4])
    assert y[5] == np.float32(3e38) and y[6] == 0 and y[7] == 20 and y[8] == 0
    d = _C.gelu_backward(x, np.ones_like(x), "none")
    assert np.isnan(d[:3]).all()  # every derivative at +-inf is NaN (inf * 0)
    np.testing.assert_array_equal(d[3:], [0.5, 0.5, 1.0, 0.0, 1.0, 0.0])
    for empty in (np.zeros(0, np.float32), np.zeros((3, 0), np.float32)):
        assert _C.gelu_forward(empty, "none").shape == empty.shape
        assert _C.gelu_backward(empty, empty, "none").shape == empty.shape


@pytest.mark.parametrize("n", [1, 15, 17, 1000, 40_001])
def test_odd_sizes_match_elementwise(n):
    # the vector body and the scalar tail compute the same formula: each element as if alone
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 4
    y = _C.gelu_forward(x, "none")
    alone = np.array([_C.gelu_forward(x[i:i + 1], "none")[0] for i in range(min(n, 40))], np.float32)
    np.testing.assert_array_equal(y[:len(alone)].view(np.uint32), alone.view(np.uint32))
