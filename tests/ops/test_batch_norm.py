"""batch_norm (ops/batch_norm.py) against torch.nn.functional.batch_norm, forward and backward, on
every backend of the family: the numpy reference, the C++ kernels (cpu) and the Triton kernels
(cuda: a GPU, or Triton's interpreter)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import assert_close, gradcheck

backend_device = backend_device_fixture()
RED = {"kind": "reduction"}


def _stats(c, like, dtype="float32"):
    """Running statistics (mean, var) for c channels, on the device of `like`'s library."""
    rng = np.random.default_rng(7)
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    if isinstance(like, tinyml.Tensor):
        return tinyml.tensor(mean, dtype=like.dtype, device=like.device), tinyml.tensor(var, dtype=like.dtype,
                                                                                         device=like.device)
    return torch.tensor(mean, dtype=like.dtype), torch.tensor(var, dtype=like.dtype)


def _fn(training, affine=True, momentum=0.1, eps=1e-5):
    def fn(x, *wb):
        lib = F if isinstance(x, tinyml.Tensor) else TF
        rm, rv = _stats(x.shape[1], x)
        w, b = wb if affine else (None, None)
        return lib.batch_norm(x, rm, rv, w, b, training, momentum, eps)

    return fn


SHAPES = [(4, 3), (5, 3, 7), (2, 3, 5, 4), (3, 2, 3, 2, 3), (2, 5, 1, 1), (1, 4, 3, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_against_torch(backend_device, shape, training):
    c = shape[1]
    check_op([shape, (c,), (c,)], _fn(training), device=backend_device, **RED)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_without_affine_and_float64(backend_device, training):
    check_op([(4, 3, 5)], _fn(training, affine=False), device=backend_device, **RED)
    check_op([(3, 4, 3, 3), (4,), (4,)], _fn(training, eps=1e-3), device=backend_device, dtype="float64",
             **RED)


def test_batch_norm_noncontiguous_and_odd_sizes(backend_device):
    check_op([(6, 5), (5,), (5,)], _fn(True), device=backend_device, noncontiguous=True, **RED)
    check_op([(7, 5, 13, 11), (5,), (5,)], _fn(True), device=backend_device, **RED)  # no block multiple
    check_op([(2, 3, 37, 41), (3,), (3,)], _fn(True), device=backend_device, **RED)  # M = 3034 > one block


@pytest.mark.parametrize("shape", [(300, 131), (5, 7, 61, 23)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_multithreaded_sizes(kernels, shape, training):
    """Over 32768 values, so the C++ kernels split the channels among threads: for an (N, C) input in
    blocks of columns, else channel by channel."""
    c = shape[1]
    check_op([shape, (c,), (c,)], _fn(training), **RED)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_batch_norm_half_precision(backend_device, dtype):
    check_op([(4, 3, 5), (3,), (3,)], lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
             lambda x, w, b: TF.batch_norm(x.float(), None, None, w.float(), b.float(), True).to(x.dtype),
             device=backend_device, dtype=dtype, **RED)


def test_batch_norm_batch_statistics_without_running_stats(backend_device):
    check_op([(4, 3, 5), (3,), (3,)], lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
             lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True), device=backend_device, **RED)


@pytest.mark.parametrize("momentum", [0.1, 1.0])
def test_running_statistics_after_several_steps(backend_device, momentum):
    rng = np.random.default_rng(0)
    rm, rv = tinyml.zeros(3, device=backend_device), tinyml.ones(3, device=backend_device)
    trm, trv = torch.zeros(3), torch.ones(3)
    for step in range(4):
        x = (rng.standard_normal((5, 3, 4)) * (step + 1) + step).astype(np.float32)
        y = F.batch_norm(tinyml.tensor(x, device=backend_device), rm, rv, training=True, momentum=momentum)
        ty = TF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=momentum)
        assert_close(y.cpu(), ty, kind="reduction")
        assert_close(rm.cpu(), trm, kind="reduction")
        assert_close(rv.cpu(), trv, kind="reduction")


def test_running_statistics_strided_or_of_another_dtype(backend_device):
    """A strided running_mean (the kernel updates a copy that is written back) and a float64
    running_var beside a float32 input: both move as PyTorch's formula says."""
    x = np.random.default_rng(3).standard_normal((6, 3, 2)).astype(np.float32)
    buf = tinyml.zeros(6, device=backend_device)
    rm, rv = buf[::2], tinyml.ones(3, dtype=tinyml.float64, device=backend_device)
    F.batch_norm(tinyml.tensor(x, device=backend_device), rm, rv, training=True, momentum=0.25)
    assert_close(buf.cpu().numpy()[::2], 0.25 * x.mean((0, 2)), kind="reduction")
    assert np.array_equal(buf.cpu().numpy()[1::2], np.zeros(3))
    assert_close(rv.cpu(), 0.75 + 0.25 * x.astype(np.float64).var((0, 2), ddof=1), rtol=1e-6, atol=1e-7)


def test_empty_batch_leaves_running_statistics(backend_device):
    rm, rv = tinyml.zeros(3, device=backend_device), tinyml.ones(3, device=backend_device)
    y = F.batch_norm(tinyml.randn(0, 3, 5, device=backend_device), rm, rv, training=True)
    assert y.shape == (0, 3, 5)
    assert np.array_equal(rm.cpu().numpy(), np.zeros(3)) and np.array_equal(rv.cpu().numpy(), np.ones(3))


def test_nan_propagates_per_channel(backend_device):
    x = np.random.default_rng(1).standard_normal((4, 3, 2)).astype(np.float32)
    x[1, 1, 0] = np.nan
    x[2, 2, 1] = np.inf
    for training in (True, False):
        args = (torch.zeros(3), torch.ones(3))
        ty = TF.batch_norm(torch.tensor(x), *args, training=training)
        y = F.batch_norm(tinyml.tensor(x, device=backend_device), tinyml.zeros(3, device=backend_device),
                         tinyml.ones(3, device=backend_device), training=training)
        np.testing.assert_array_equal(np.isnan(y.cpu().numpy()), np.isnan(ty.numpy()))
        assert_close(y.cpu(), ty, kind="reduction")


def test_constant_channel_has_zero_variance(backend_device):
    x = tinyml.full((4, 2, 3), 1e4 + 0.1, device=backend_device)
    b = tinyml.tensor([0.5, -1.0], device=backend_device)
    y = F.batch_norm(x, None, None, None, b, training=True)
    expected = np.broadcast_to(np.array([0.5, -1.0])[None, :, None], (4, 2, 3))
    np.testing.assert_array_equal(y.cpu().numpy(), expected)


def test_gradcheck_float64():
    rng = np.random.default_rng(0)
    x = tinyml.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    w = tinyml.tensor(rng.standard_normal(2), requires_grad=True)
    b = tinyml.tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    rm, rv = tinyml.tensor(rng.standard_normal(2)), tinyml.tensor(rng.random(2) + 0.5)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b])
    assert gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x])


def test_double_backward_matches_torch():
    rng = np.random.default_rng(2)
    xs, ws = rng.standard_normal((4, 3, 2)), rng.standard_normal(3)
    x, w = tinyml.tensor(xs, requires_grad=True), tinyml.tensor(ws, requires_grad=True)
    tx, tw = torch.tensor(xs, requires_grad=True), torch.tensor(ws, requires_grad=True)
    loss = (F.batch_norm(x, None, None, w, None, True) ** 2).sum()
    tloss = (TF.batch_norm(tx, None, None, tw, None, True) ** 2).sum()
    (gx,) = tinyml.autograd.grad(loss, [x], create_graph=True)
    (tgx,) = torch.autograd.grad(tloss, [tx], create_graph=True)
    assert_close(gx, tgx, kind="reduction")
    gx.sum().backward()
    tgx.sum().backward()
    assert_close(x.grad, tx.grad, kind="reduction")
    assert_close(w.grad, tw.grad, kind="reduction")


def test_errors_as_torch():
    with pytest.raises(ValueError, match=r"per channel when training, got input size \[1, 3"):
        F.batch_norm(tinyml.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\[1, 3, 1, 1\]"):
        F.batch_norm(tinyml.randn(1, 3, 1, 1), tinyml.zeros(3), tinyml.ones(3), training=True)
    F.batch_norm(tinyml.randn(1, 3), tinyml.zeros(3), tinyml.ones(3), training=False)  # eval: fine
    with pytest.raises(RuntimeError, match=r"running_mean should contain 3 elements not 4"):
        F.batch_norm(tinyml.randn(2, 3), tinyml.zeros(4), tinyml.ones(3), training=True)
    with pytest.raises(RuntimeError, match=r"weight should contain 3 elements not 4"):
        F.batch_norm(tinyml.randn(2, 3), None, None, tinyml.ones(4), training=True)
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        F.batch_norm(tinyml.randn(2, 3), None, None, training=False)
    with pytest.raises(RuntimeError, match="floating point.*int64"):
        F.batch_norm(tinyml.tensor([[1, 2], [3, 4]]), None, None, training=True)
    with pytest.raises(ValueError, match=r"at least 2 dims, got shape \[3\]"):
        F.batch_norm(tinyml.randn(3), None, None, training=True)


def test_cpu_binding_checks_sizes():
    from tinyml.backends.cpu import _C

    if _C is None:
        pytest.skip("tinyml._C (the C++ kernels) is not built")
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"weight has shape \(2,\) but input has shape \(2, 3, 4\)"):
        _C.batch_norm_forward(x, np.ones(2, np.float32), None, None, None, 1e-5)
    with pytest.raises(ValueError, match=r"expected an array of shape \(N, C, \*\), got shape \(24,\)"):
        _C.batch_norm_forward(x.reshape(24), None, None, None, None, 1e-5)
    with pytest.raises(ValueError, match=r"running_var has shape \(4,\) but input has shape \(2, 3, 4\)"):
        _C.batch_norm_forward(x, None, None, None, None, 1e-5, np.zeros(3, np.float32),
                              np.ones(4, np.float32))
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean: the array is read-only"):
        _C.batch_norm_forward(x, None, None, None, None, 1e-5, frozen, None, 0.1)
    with pytest.raises(ValueError, match=r"grad_output has shape \(2, 3, 3\) but input has shape \(2, 3, 4"):
        _C.batch_norm_backward(np.zeros((2, 3, 3), np.float32), x, None, np.zeros(3, np.float32),
                               np.ones(3, np.float32), 1e-5, True, True, True, True)
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        _C.batch_norm_forward(x, np.ones(3), None, None, None, 1e-5)


def test_batch_norm_2d_input_far_from_zero_constant_and_nonfinite_columns(kernels):
    """The (N, C) kernel's one-pass shifted moments: data 1e4 away from zero with unit spread, a
    constant column (exactly zero output and variance), NaN and inf columns (NaN), against float64 numpy.
    The statistics (momentum 1: the running ones are the batch's, variance unbiased) are checked to
    float32 rounding; y only to 2e-3, float32's spacing at 1e4 (x - mean is exact only to that)."""
    rng = np.random.default_rng(2)
    x = (1e4 + rng.standard_normal((300, 5))).astype(np.float32)
    x[:, 1] = 3.25
    x[7, 2] = np.nan
    x[9, 3] = np.inf
    rm, rv = tinyml.zeros(5), tinyml.ones(5)
    y = F.batch_norm(tinyml.tensor(x), rm, rv, training=True, momentum=1.0).numpy()
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        mean, var = x64.mean(0), x64.var(0)
        expected = (x64 - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(np.isnan(rv.numpy()), np.isnan(var))
    assert (y[:, 1] == 0).all() and rv.numpy()[1] == 0 and rm.numpy()[1] == np.float32(3.25)
    ok = ~np.isnan(var)
    assert_close(rm.numpy()[ok], mean[ok].astype(np.float32))
    assert_close(rv.numpy()[ok], (var * 300 / 299)[ok].astype(np.float32), kind="reduction")
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(y[ok], expected[ok], atol=2e-3)
