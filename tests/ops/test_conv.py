"""conv1d/conv2d, pooling and interpolation vs torch.nn.functional, forward and backward, on the
reference and the cpu (C++) kernels; conv_transpose1d/2d on every backend (reference, cpu, and the
Triton kernels on cuda)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, close_scaled, impls, needs_C
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

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
    assert gradcheck(lambda x, w, b: tinyml.conv2d(x, w, b, stride=(1, 2), padding=1, dilation=(2, 1),
                                                   groups=2),
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


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_conv2d_on_every_backend(backend_device, dtype):
    R = {"device": backend_device, "kind": "reduction", "dtype": dtype}
    check_op([(1, 3, 6, 6), (2, 3, 2, 2)], lambda x, w: F(x).conv2d(x, w, padding="same"), **R)
    if dtype != "float32":
        return
    check_op([(2, 3, 7, 6), (4, 3, 3, 3), (4,)], lambda x, w, b: F(x).conv2d(x, w, b, padding=1), **R)
    check_op([(2, 4, 7, 6), (6, 2, 3, 2)], lambda x, w: F(x).conv2d(x, w, stride=(2, 1), padding=(1, 0),
                                                                     dilation=(1, 2), groups=2), **R)
    check_op([(2, 3, 9), (4, 3, 3)], lambda x, w: F(x).conv1d(x, w, padding=2), noncontiguous=True, **R)


def F(x):
    return tinyml.nn.functional if isinstance(x, tinyml.Tensor) else torch.nn.functional


# -- the C++ conv kernels against their numpy reference, kernel by kernel, and the binding's checks --

_RNG = np.random.default_rng(0)

CONV = [  # x shape, w shape, stride, pads (t, b, l, r), dilation, groups
    ((2, 3, 9, 11), (5, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((3, 4, 13, 7), (6, 2, 3, 2), (2, 3), (2, 1, 0, 3), (2, 1), 2),
    ((1, 8, 17, 17), (8, 1, 5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 8),
    ((2, 6, 5, 6), (4, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 6, 7, 6), (4, 3, 1, 1), (2, 1), (1, 0, 0, 1), (1, 1), 2),
    ((40, 3, 31, 29), (7, 3, 4, 3), (1, 2), (1, 2, 0, 1), (1, 3), 1),  # several im2col chunks
]


@needs_C
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs,ws,stride,pads,dil,groups", CONV)
def test_conv2d_kernels(dtype, xs, ws, stride, pads, dil, groups):
    x, w = _RNG.standard_normal(xs).astype(dtype), _RNG.standard_normal(ws).astype(dtype)
    b = _RNG.standard_normal(ws[0]).astype(dtype)
    cpu, ref = impls("conv2d_forward")
    y = ref(x, w, b, stride, pads, dil, groups)
    close_scaled(cpu(x, w, b, stride, pads, dil, groups), y, dtype)
    close_scaled(cpu(x, w, None, stride, pads, dil, groups), ref(x, w, None, stride, pads, dil, groups),
                 dtype)
    dy = _RNG.standard_normal(y.shape).astype(dtype)
    cpu, ref = impls("conv2d_backward")
    close_scaled(cpu(x, w, dy, stride, pads, dil, groups), ref(x, w, dy, stride, pads, dil, groups), dtype)
    close_scaled(cpu(x, w, dy, stride, pads, dil, groups, (True, False, False)),
          ref(x, w, dy, stride, pads, dil, groups, (True, False, False)), dtype)


@needs_C
def test_conv2d_blocks_and_tiles():
    """Output columns spanning several 128-column blocks, out/in channel counts off the 6-row and
    16-column register tiles, a batch of one, and float64."""
    for dtype, xs, ws, groups in (("float32", (1, 7, 23, 19), (13, 7, 3, 3), 1),
                                  ("float64", (3, 10, 17, 15), (10, 5, 2, 3), 2)):
        x, w = _RNG.standard_normal(xs).astype(dtype), _RNG.standard_normal(ws).astype(dtype)
        args = ((1, 1), (1, 0, 2, 1), (1, 1), groups)
        cpu, ref = impls("conv2d_forward")
        y = ref(x, w, None, *args)
        close_scaled(cpu(x, w, None, *args), y, dtype)
        dy = _RNG.standard_normal(y.shape).astype(dtype)
        cpu, ref = impls("conv2d_backward")
        close_scaled(cpu(x, w, dy, *args), ref(x, w, dy, *args), dtype)


@needs_C
def test_cpu_conv_bindings_check_arguments():
    f = np.float32
    x, w = np.zeros((1, 2, 5, 5), f), np.zeros((4, 1, 3, 3), f)
    with pytest.raises(ValueError,
                       match=r"weight \(4, 1, 3, 3\) with groups=1 does not fit input \(1, 2, 5, 5\)"):
        _C.conv2d_forward(x, w, None, 1, 1, 1, 1, 1, 1, 1, 5, 5)
    with pytest.raises(ValueError, match=r"bias has shape \(3,\), expected \(4,\)"):
        _C.conv2d_forward(x, w, np.zeros(3, f), 1, 1, 1, 1, 1, 1, 2, 5, 5)
    with pytest.raises(ValueError, match=r"grad_output has shape \(1, 3, 5, 5\)"):
        _C.conv2d_backward(x, w, np.zeros((1, 3, 5, 5), f), 1, 1, 1, 1, 1, 1, 2, True, True)
