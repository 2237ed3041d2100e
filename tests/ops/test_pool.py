"""max/avg/adaptive pooling and interpolation vs torch.nn.functional, forward and backward, on the
reference and the cpu (C++) kernels, and on every backend (the Triton kernels on cuda); the C++ pool
and upsample kernels against their numpy references, kernel by kernel, and the bindings' checks."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, close_scaled, impls, needs_C
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import assert_close, gradcheck

backend_device = backend_device_fixture()


def F(x):
    return tinyml.nn.functional if isinstance(x, tinyml.Tensor) else torch.nn.functional


@pytest.mark.parametrize("kw", [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": (3, 2), "stride": (2, 3), "padding": (1, 1), "dilation": (2, 1), "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
])
def test_max_pool2d(kernels, kw):
    y = check_op([(2, 3, 9, 10)], lambda x: tinyml.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw))
    x = torch.tensor(np.random.default_rng(3).standard_normal((3, 7, 8)), dtype=torch.float32)
    ty, ti = TF.max_pool2d(x, return_indices=True, **kw)
    my, mi = tinyml.max_pool2d(tinyml.tensor(x.numpy()), return_indices=True, **kw)
    assert mi.dtype == tinyml.int64 and np.array_equal(mi.numpy(), ti.numpy())
    assert_close(my, ty)
    assert y is not None


def test_max_pool2d_nan_and_ties(kernels):
    x = np.zeros((1, 2, 4, 4), np.float32)  # all ties: the first index of each window
    x[0, 1, 0, 1] = x[0, 1, 1, 0] = np.nan  # two NaNs in one window: PyTorch keeps the last
    ty, ti = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    my, mi = tinyml.max_pool2d(tinyml.tensor(x), 2, return_indices=True)
    assert np.array_equal(mi.numpy(), ti.numpy())
    assert_close(my, ty)


def test_max_pool2d_noncontiguous(kernels):
    check_op([(2, 3, 6, 7)], lambda x: tinyml.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2),
             noncontiguous=True)


@pytest.mark.parametrize("kw", [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False, "ceil_mode": True},
    {"kernel_size": (2, 3), "stride": (3, 2), "padding": (1, 1), "ceil_mode": True},
    {"kernel_size": 3, "padding": 1, "divisor_override": 4},
])
def test_avg_pool2d(kernels, kw):
    check_op([(2, 3, 9, 10)], lambda x: tinyml.avg_pool2d(x, **kw), lambda x: TF.avg_pool2d(x, **kw),
             kind="reduction")


@pytest.mark.parametrize("size", [(3, 4), 1, (5, None), (7, 9)])
def test_adaptive_avg_pool2d(kernels, size):
    check_op([(2, 3, 7, 9)], lambda x: tinyml.adaptive_avg_pool2d(x, size),
             lambda x: TF.adaptive_avg_pool2d(x, size), kind="reduction")


def test_pool_errors():
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        tinyml.max_pool2d(tinyml.randn(1, 1, 5, 5), 2, padding=2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        tinyml.avg_pool2d(tinyml.randn(1, 1, 2, 2), 3)
    with pytest.raises(RuntimeError, match=r"3D or 4D .* shape \(5, 5\)"):
        tinyml.max_pool2d(tinyml.randn(5, 5), 2)


@pytest.mark.parametrize("shape,kw", [
    ((2, 3, 5, 4), {"scale_factor": 2, "mode": "nearest"}),
    ((2, 3, 5, 4), {"size": (7, 3), "mode": "nearest"}),
    ((2, 3, 5, 4), {"scale_factor": 1.7, "mode": "nearest"}),
    ((2, 3, 5, 4), {"size": (8, 9), "mode": "nearest-exact"}),
    ((2, 3, 5, 4), {"scale_factor": 2, "mode": "bilinear", "align_corners": False}),
    ((2, 3, 5, 4), {"size": (9, 7), "mode": "bilinear", "align_corners": True}),
    ((2, 3, 6, 5), {"size": (4, 3), "mode": "bilinear"}),  # downsampling
    ((2, 3, 5, 4), {"scale_factor": (1.5, 2.5), "mode": "bilinear"}),
    ((2, 3, 7), {"scale_factor": 3, "mode": "linear", "align_corners": True}),
    ((2, 3, 7), {"size": 11, "mode": "nearest"}),
])
def test_interpolate(kernels, shape, kw):
    check_op([shape], lambda x: tinyml.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw),
             kind="reduction")


def test_interpolate_gradcheck_and_errors(kernels):
    x = tinyml.tensor(np.random.default_rng(1).standard_normal((1, 2, 3, 3)), requires_grad=True)
    assert gradcheck(lambda x: tinyml.interpolate(x, size=(4, 5), mode="bilinear"), [x])
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        tinyml.interpolate(tinyml.randn(1, 1, 4, 4), scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        tinyml.interpolate(tinyml.randn(1, 1, 4, 4), size=3, scale_factor=2)
    with pytest.raises(NotImplementedError, match="bicubic"):
        tinyml.interpolate(tinyml.randn(1, 1, 4, 4), scale_factor=2, mode="bicubic")


@pytest.mark.parametrize("output_size", [(0, 2), (2, 0), (0, 0)])
def test_reference_adaptive_avg_pool_kernel_takes_an_empty_output(output_size):
    """The numpy oracle itself (not only the op) gives PyTorch's empty result and a zero gradient."""
    from tinyml.backends.reference.pool import adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward

    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype(np.float32)
    y = adaptive_avg_pool2d_forward(x, output_size)
    assert y.shape == tuple(torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), output_size).shape)
    dx = adaptive_avg_pool2d_backward(np.ones_like(y), x.shape)
    assert dx.shape == x.shape and not dx.any()


def test_max_pool2d_on_every_backend(backend_device):
    R = {"device": backend_device, "kind": "reduction"}
    check_op([(2, 3, 7, 6)], lambda x: F(x).max_pool2d(x, 3, 2, 1), **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).max_pool2d(x, (2, 3), (1, 2), 0, dilation=(2, 1), ceil_mode=True),
             **R)


def test_avg_pool2d_on_every_backend(backend_device):
    R = {"device": backend_device, "kind": "reduction"}
    check_op([(2, 3, 7, 6)], lambda x: F(x).avg_pool2d(x, 3, 2, 1), **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
             **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).avg_pool2d(x, 2, divisor_override=3), **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).adaptive_avg_pool2d(x, (3, 4)), **R)


def test_upsample_on_every_backend(backend_device):
    R = {"device": backend_device, "kind": "reduction"}
    check_op([(2, 3, 4, 5)], lambda x: F(x).interpolate(x, scale_factor=2, mode="nearest"), **R)
    check_op([(2, 3, 4, 5)], lambda x: F(x).interpolate(x, size=(7, 9), mode="bilinear", align_corners=False),
             **R)
    check_op([(2, 3, 4, 5)], lambda x: F(x).interpolate(x, size=(7, 3), mode="bilinear", align_corners=True),
             dtype="float64", **R)


# -- the C++ pool and upsample kernels against their numpy reference, kernel by kernel --

_RNG = np.random.default_rng(0)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("out,mode,ac,scales", [((11, 7), "nearest", False, (None, None)),
                                                ((6, 8), "nearest", False, (2.0, 2.0)),
                                                ((9, 5), "nearest-exact", False, (None, None)),
                                                ((10, 8), "bilinear", False, (2.0, 2.0)),
                                                ((7, 3), "bilinear", True, (None, None)),
                                                ((3, 2), "bilinear", False, (None, None))])
def test_upsample_kernels(dtype, out, mode, ac, scales):
    x = _RNG.standard_normal((2, 3, 5, 4)).astype(dtype)
    cpu, ref = impls("upsample2d_forward")
    y = ref(x, out, mode, ac, scales)
    close_scaled(cpu(x, out, mode, ac, scales), y, dtype)
    dy = _RNG.standard_normal(y.shape).astype(dtype)
    cpu, ref = impls("upsample2d_backward")
    close_scaled(cpu(dy, x.shape, mode, ac, scales), ref(dy, x.shape, mode, ac, scales), dtype)


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k,s,p,d,ceil", [((3, 3), (2, 2), (1, 1), (1, 1), False),
                                           ((2, 3), (1, 2), (0, 1), (2, 1), True),
                                           ((3, 3), (3, 3), (0, 0), (1, 1), True)])
def test_pool_kernels(dtype, k, s, p, d, ceil):
    x = _RNG.standard_normal((2, 3, 10, 9)).astype(dtype)
    cpu, ref = impls("max_pool2d_forward")
    y, idx = ref(x, k, s, p, d, ceil)
    close_scaled(cpu(x, k, s, p, d, ceil), (y, idx), dtype)
    dy = _RNG.standard_normal(y.shape).astype(dtype)
    cpu, ref = impls("max_pool2d_backward")
    close_scaled(cpu(dy, idx, x.shape), ref(dy, idx, x.shape), dtype)
    for inc, div in ((True, None), (False, None), (True, 5)):
        cpu, ref = impls("avg_pool2d_forward")
        y = ref(x, k, s, p, ceil, inc, div)
        close_scaled(cpu(x, k, s, p, ceil, inc, div), y, dtype)
        cpu, ref = impls("avg_pool2d_backward")
        g = _RNG.standard_normal(y.shape).astype(dtype)
        close_scaled(cpu(g, x.shape, k, s, p, ceil, inc, div), ref(g, x.shape, k, s, p, ceil, inc, div),
                     dtype)


@needs_C
def test_cpu_pool_bindings_check_arguments():
    f = np.float32
    x = np.zeros((1, 2, 5, 5), f)
    with pytest.raises(ValueError, match=r"tap h0\[0\] = 7 is outside \[0, 5\)"):
        z = np.zeros(2, np.int64)
        _C.upsample2d_forward(x, 2, 2, np.array([7, 0]), z, z, z, np.zeros(2, f), np.zeros(2, f))
    # an index outside the plane is refused before anything is written; -1 (a window of padding only)
    # adds nothing
    with pytest.raises(ValueError, match=r"index 99 at flat position 1 is outside \[-1, 4\)"):
        _C.max_pool2d_backward(np.ones((1, 1, 1, 2), f), np.array([[[[3, 99]]]]), 2, 2)
    dx = _C.max_pool2d_backward(np.ones((1, 1, 1, 2), f), np.array([[[[3, -1]]]]), 2, 2)
    assert dx.sum() == 1.0 and dx.reshape(-1)[3] == 1.0


@needs_C
def test_max_pool2d_kernel_interior_and_border_paths_match_torch():
    """csrc/pool_max.h runs windows inside the image tap by tap over a row (vectorised) and the
    rest with checked taps: indices and values equal PyTorch's on random geometries with many ties
    and NaNs (which window path a NaN or a tie lands in must not matter)."""
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 40:
        (kh, kw), (sh, sw), (dh, dw) = rng.integers(1, 4, 2), rng.integers(1, 4, 2), rng.integers(1, 3, 2)
        ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
        h, w = rng.integers(max(kh, kw) * 2, 14, 2)
        ceil = bool(rng.integers(0, 2))
        x = rng.integers(-3, 3, (2, 3, h, w)).astype(np.float32)  # small integers: many ties
        x[rng.random(x.shape) < 0.03] = np.nan
        try:
            ty, ti = TF.max_pool2d(torch.tensor(x), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil,
                                   return_indices=True)
        except RuntimeError:  # a geometry PyTorch rejects (pad over half the dilated window)
            continue
        y, idx = _C.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, *ty.shape[2:])
        geometry = (kh, kw, sh, sw, ph, pw, dh, dw, ceil)
        assert np.array_equal(idx, ti.numpy()), geometry
        assert np.array_equal(y, ty.numpy(), equal_nan=True), geometry
        checked += 1
