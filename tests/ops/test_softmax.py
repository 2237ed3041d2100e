"""softmax and log_softmax (ops/softmax.py) against PyTorch, forward and backward, on every backend
of the family (backend_device: the numpy reference, the C++ kernels, the Triton kernels); the C++
kernels also called directly on NaN and extreme rows."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, close, impls, needs_C, rand
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F

RED = {"kind": "reduction"}
backend_device = backend_device_fixture()
NAMES = ["softmax", "log_softmax"]


@pytest.mark.parametrize("name", NAMES)
def test_softmax_family_any_dim(backend_device, name):
    for dim in (0, -1, 1):
        check_op([(3, 4, 5)], lambda x, d=dim: getattr(F, name)(x, d),
                 lambda x, d=dim: getattr(TF, name)(x, d), device=backend_device, **RED)
    check_op([(4, 6)], lambda x: getattr(F, name)(x, -1), lambda x: getattr(TF, name)(x, -1),
             noncontiguous=True, device=backend_device, **RED)


@pytest.mark.parametrize("name", NAMES)
def test_softmax_family_long_rows(backend_device, name):
    check_op([(2, 5000)], lambda x: getattr(x, name)(-1), device=backend_device, **RED)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_softmax_dtypes(backend_device, dtype):
    check_op([(3, 7)], lambda x: (x * 1.5 + 1).softmax(-1), device=backend_device, dtype=dtype, **RED)


@pytest.mark.parametrize("name", NAMES)
def test_softmax_family_nonfinite_rows_as_pytorch(backend_device, name):
    x = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0]],
                 np.float32)
    ours = getattr(F, name)(tinyml.tensor(x, device=backend_device), -1).cpu().numpy()
    np.testing.assert_allclose(ours, getattr(TF, name)(torch.tensor(x), -1).numpy(), rtol=1e-6, atol=1e-7)


def test_softmax_scalar_and_dtype_argument():
    np.testing.assert_array_equal(F.softmax(tinyml.tensor(3.0), 0).numpy(), 1.0)
    np.testing.assert_array_equal(F.log_softmax(tinyml.tensor(3.0), 0).numpy(), 0.0)
    y = F.softmax(tinyml.tensor([1, 2, 3]), -1, dtype=tinyml.float64)
    assert y.dtype is tinyml.float64
    with pytest.raises(TypeError, match="dim must be given"):
        F.softmax(tinyml.randn(3))


@needs_C
@pytest.mark.parametrize("n", [1, 7, 16, 17, 37, 600])
def test_cpu_float32_exp_keeps_nan_in_every_lane(n):
    # the vectorised float32 exp used to clamp its argument first, turning NaN into exp(88.4): every
    # position of rows longer and shorter than a vector (and than a cross-entropy chunk of 512)
    # must now give a NaN row, in softmax, log_softmax, cross_entropy and its gradient
    rng = np.random.default_rng(8)
    x = np.repeat(rand(rng, (1, n), np.float32), n, axis=0)
    x[np.arange(n), np.arange(n)] = np.nan
    for fn in (_C.softmax_forward, _C.log_softmax_forward):
        assert np.isnan(fn(x)).all()
    t = np.zeros(n, np.int64)
    loss, row_max, log_sum = _C.cross_entropy_forward(x, t, -100, 0.1)
    assert np.isnan(loss).all() and np.isnan(log_sum).all()
    dx = _C.cross_entropy_backward(x, t, row_max, log_sum, np.ones(n, np.float32), -100, 0.1)
    assert np.isnan(dx).all()
    # while -inf, and entries far below the max, still get a probability of exactly 0
    big = np.array([[0.0, -np.inf, 1e30, -1e30, 88.0, -87.0]], np.float32)
    expected = impls("softmax_forward")[1](big.astype(np.float64), -1)
    close(_C.softmax_forward(big), expected.astype(np.float32), np.float32, "softmax of extremes")
