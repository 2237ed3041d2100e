"""silu / swiglu float32 at the ends of the exp in their sigmoid denominators (csrc/activation.cpp
`fexp_ieee_chain`): exp(-x) is the true inf for -x > 88.7228 (silu = x / inf = -0, NaN at -inf),
fexp's saturated 0x1.6a0948p+127 for -x in (88.3763, 88.7228], and a true 0 for -x < -87.3365
(silu(x) = x). The kernel's division is IEEE, as numpy's, so the expected values are exact."""
import numpy as np
import pytest
from cpu_kernel_helpers import _C, needs_C

F = np.float32
SAT = F(float.fromhex("0x1.6a0948p+127"))


def _expected(x):
    e = np.where(-x > F(88.72283935546875), F(np.inf), np.where(-x > F(88.3762626647949), SAT, F(np.nan)))
    e = np.where(-x < F(-87.33654475), F(0), e)
    return (x / (F(1) + e)).astype(F)


@needs_C
def test_silu_exp_ends_exact():
    top = np.array([-88.3762626647949, -88.5, -88.72283935546875, -88.8, -100, -1e30], F)
    top = np.concatenate([top, np.nextafter(top, F(-np.inf)), np.nextafter(top[:3], F(0))])
    top = top[-top > F(88.3762626647949)]  # the saturated and the inf ranges only
    bottom = np.array([87.33654475, 87.5, 100, 1e30], F)
    bottom = np.concatenate([bottom, np.nextafter(bottom, F(np.inf))])
    bottom = bottom[-bottom < F(-87.33654475)]
    for x in (top, bottom):
        y = _C.silu_forward(x)
        np.testing.assert_array_equal(y.view(np.uint32), _expected(x).view(np.uint32))
        b = np.full_like(x, 3)
        np.testing.assert_array_equal(_C.swiglu_forward(x, b), _expected(x) * F(3))


@needs_C
@pytest.mark.parametrize("v,want", [(-np.inf, np.nan), (np.inf, np.inf), (np.nan, np.nan)])
def test_silu_exp_ends_nonfinite(v, want):
    y = _C.silu_forward(np.full(37, v, F))  # 37: vector body and scalar tail
    assert np.array_equal(y, np.full(37, want, F), equal_nan=True)
