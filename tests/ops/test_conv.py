"""conv1d/conv2d, pooling and interpolation vs torch.nn.functional, forward and backward, on the
reference and the cpu (C++) kernels; conv_transpose1d/2d on every backend (reference, cpu, and the
Triton kernels on cuda)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import assert_close, gradcheck

CONV2D = [
    # x shape, w shape, kwargs
    ((2, 3, 7, 9), (4, 3, 3, 3), {}),
    ((2, 4, 9, 8), (6, 2, 3, 2), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}),
    ((1, 6, 11, 10), (6, 1, 3, 3), {"stride": 2, "padding": 1, "groups": 6}),  # depthwise
    ((2, 3, 6, 7), (5, 3, 4, 2), {"padding": "same", "dilation": (1, 2)}),  # even kernel: asymmetric pad
    ((2, 3, 6, 5), (4, 3, 1, 1), {}),  # 1x1
    ((3, 8, 8), (5, 3, 3, 3), {"padding": "valid", "stride": 3}),  # unbatched
    ((2, 5, 13, 17), (7, 5, 5, 3), {"stride": (3, 2), "padding": (2, 0)}),  # sizes off any block multiple
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("xs,ws,kw", CONV2D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(kernels, xs, ws, kw, bias):
    shapes = [xs, ws] + ([(ws[0],)] if bias else [])
    check_op(shapes, lambda *a: tinyml.conv2d(*a, **kw), lambda *a: TF.conv2d(*a, **kw), kind="reduction")


def test_conv2d_noncontiguous_and_float64(kernels):
    check_op([(2, 3, 6, 6), (4, 3, 3, 3)], lambda x, w: tinyml.conv2d(x, w, padding=1),
             lambda x, w: TF.conv2d(x, w, padding=1), noncontiguous=True, kind="reduction")
    check_op([(2, 4, 5, 6), (4, 2, 2, 3), (4,)], lambda x, w, b: tinyml.conv2d(x, w, b, groups=2, stride=2),
             lambda x, w, b: TF.conv2d(x, w, b, groups=2, stride=2), dtype="float64", kind="reduction")


@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 3, 11), (4, 3, 3), {}),
    ((2, 4, 16), (6, 2, 4), {"stride": 3, "padding": 2, "dilation": 2, "groups": 2}),
    ((4, 9), (4, 1, 5), {"padding": "same", "groups": 4}),
])
def test_conv1d(kernels, xs, ws, kw):
    check_op([xs, ws, (ws[0],)], lambda *a: tinyml.conv1d(*a, **kw), lambda *a: TF.conv1d(*a, **kw),
             kind="reduction")


def test_conv_gradcheck(kernels):
    rng = np.random.default_rng(0)
    x = tinyml.tensor(rng.standard_normal((1, 2, 4, 5)), requires_grad=True)
    w = tinyml.tensor(rng.standard_normal((2, 1, 2, 3)), requires_grad=True)
    b = tinyml.tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda x, w, b: tinyml.conv2d(x, w, b, stride=(1, 2), padding=1, dilation=(2, 1), groups=2),
                     [x, w, b])


def test_conv_errors():
    x, w = tinyml.randn(2, 4, 5, 5), tinyml.randn(8, 3, 3, 3)
    with pytest.raises(RuntimeError, match=r"expected input\[2, 4, 5, 5\] to have 3 channels, but got 4"):
        tinyml.conv2d(x, w)
    with pytest.raises(RuntimeError, match="divisible by groups"):
        tinyml.conv2d(x, tinyml.randn(6, 2, 3, 3), groups=4)
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        tinyml.conv2d(tinyml.randn(1, 3, 2, 2), w)
    with pytest.raises(ValueError, match="strided convolutions"):
        tinyml.conv2d(tinyml.randn(1, 3, 5, 5), w, stride=2, padding="same")
    with pytest.raises(RuntimeError, match="float64"):
        tinyml.conv2d(tinyml.randn(1, 3, 5, 5, dtype=tinyml.float64), w)
    with pytest.raises(RuntimeError, match=r"4D \(batched\) input to conv2d"):
        tinyml.conv2d(tinyml.randn(5, 5), w)


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
    check_op([(2, 3, 6, 7)], lambda x: tinyml.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), noncontiguous=True)


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
    check_op([shape], lambda x: tinyml.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), kind="reduction")


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


# -- conv_transpose1d / conv_transpose2d (the adjoint of conv, on the conv kernels) on every backend --
backend_device = backend_device_fixture()

CONV_TRANSPOSE2D = [
    # x shape, w shape (C_in, C_out/groups, kh, kw), kwargs
    ((2, 3, 5, 6), (3, 4, 3, 3), {}),
    ((2, 4, 5, 4), (4, 3, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 4, 4, 5), (4, 2, 3, 3), {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2), "groups": 2,
                                  "dilation": (1, 2)}),
    ((2, 2, 3, 3), (2, 3, 2, 2), {"stride": 1, "dilation": 2, "output_padding": 1}),  # op = stride
    ((3, 6, 6), (3, 2, 4, 4), {"stride": 2, "padding": 1}),  # unbatched
    ((2, 6, 7, 5), (6, 1, 3, 3), {"stride": 2, "groups": 6}),  # depthwise
]


@pytest.mark.parametrize("xs,ws,kw", CONV_TRANSPOSE2D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d(backend_device, xs, ws, kw, bias):
    shapes = [xs, ws] + ([(ws[1] * kw.get("groups", 1),)] if bias else [])
    check_op(shapes, lambda *a: tinyml.conv_transpose2d(*a, **kw), lambda *a: TF.conv_transpose2d(*a, **kw),
             kind="reduction", device=backend_device)


@pytest.mark.parametrize("xs,ws,kw", [
    ((2, 3, 7), (3, 4, 3), {}),
    ((2, 4, 6), (4, 3, 4), {"stride": 3, "padding": 2, "output_padding": 2, "dilation": 2, "groups": 2}),
    ((4, 9), (4, 2, 5), {"stride": 2, "output_padding": 1}),
])
def test_conv_transpose1d(backend_device, xs, ws, kw):
    shapes = [xs, ws, (ws[1] * kw.get("groups", 1),)]
    check_op(shapes, lambda *a: tinyml.conv_transpose1d(*a, **kw), lambda *a: TF.conv_transpose1d(*a, **kw),
             kind="reduction", device=backend_device)


def test_conv_transpose_noncontiguous_and_float64(backend_device):
    check_op([(2, 3, 5, 5), (3, 2, 3, 3)], lambda x, w: tinyml.conv_transpose2d(x, w, stride=2),
             lambda x, w: TF.conv_transpose2d(x, w, stride=2), noncontiguous=True, kind="reduction",
             device=backend_device)
    check_op([(2, 4, 4, 3), (4, 1, 2, 3), (2,)], lambda *a: tinyml.conv_transpose2d(*a, groups=2, padding=1),
             lambda *a: TF.conv_transpose2d(*a, groups=2, padding=1), dtype="float64", kind="reduction",
             device=backend_device)


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv2d(u, w), v> = <u, conv_transpose2d(v, w)> for the same stride, padding, dilation, groups."""
    rng = np.random.default_rng(4)
    kw = {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}
    u, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3))
    y = tinyml.conv2d(tinyml.tensor(u), tinyml.tensor(w), **kw)
    v = rng.standard_normal(tuple(y.shape))
    back = tinyml.conv_transpose2d(tinyml.tensor(v), tinyml.tensor(w), output_padding=(0, 1), **kw)
    assert tuple(back.shape) == u.shape
    assert np.isclose((y.numpy() * v).sum(), (u * back.numpy()).sum(), rtol=1e-10)


def test_conv_transpose_gradcheck():
    rng = np.random.default_rng(0)
    x = tinyml.tensor(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
    w = tinyml.tensor(rng.standard_normal((2, 2, 2, 3)), requires_grad=True)
    b = tinyml.tensor(rng.standard_normal(4), requires_grad=True)
    kw = {"stride": (2, 1), "padding": (0, 1), "output_padding": (1, 0), "groups": 2, "dilation": (1, 2)}
    assert gradcheck(lambda x, w, b: tinyml.conv_transpose2d(x, w, b, **kw), [x, w, b])


def test_conv_transpose_errors():
    x, w = tinyml.randn(2, 4, 5, 5), tinyml.randn(3, 2, 3, 3)
    with pytest.raises(RuntimeError, match=r"weight of size \[3, 2, 3, 3\], expected input\[2, 4, 5, 5\] "
                                           r"to have 3 channels, but got 4 channels instead"):
        tinyml.conv_transpose2d(x, w)
    with pytest.raises(RuntimeError, match=r"output padding must be smaller than either stride or dilation"):
        tinyml.conv_transpose2d(tinyml.randn(1, 3, 4, 4), w, stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match=r"in_channels \(3\) must be divisible by groups \(2\)"):
        tinyml.conv_transpose2d(tinyml.randn(1, 3, 4, 4), w, groups=2)
    with pytest.raises(ValueError, match="string padding is only for conv1d/conv2d"):
        tinyml.conv_transpose2d(tinyml.randn(1, 3, 4, 4), w, padding="same")
    with pytest.raises(RuntimeError, match=r"output size \[-1, -1\] is too small"):
        tinyml.conv_transpose2d(tinyml.randn(1, 3, 1, 1), w, padding=2)
    with pytest.raises(RuntimeError, match=r"bias must have shape \(2,\)"):
        tinyml.conv_transpose2d(tinyml.randn(1, 3, 4, 4), w, tinyml.randn(3))
