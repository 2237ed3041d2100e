"""layer_norm, rms_norm, group_norm: forward and backward against torch.nn.functional, on reference
and cpu kernels, and on every backend of the family (backend_device: the numpy reference, the C++
kernels, the Triton kernels); the C++ kernels also called directly against the reference."""
import numpy as np
import pytest
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C, rand
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

RED = {"kind": "reduction"}
backend_device = backend_device_fixture()


@pytest.mark.parametrize("x_shape,norm_shape", [((4, 7), (7,)), ((2, 3, 5), (5,)), ((2, 3, 4), (3, 4)),
                                                ((6,), (6,))])
def test_layer_norm_with_affine(kernels, x_shape, norm_shape):
    def fn(mod):
        return lambda x, w, b: mod.layer_norm(x, norm_shape, w, b, eps=1e-5)

    check_op([x_shape, norm_shape, norm_shape], fn(F), fn(TF), **RED)


def test_layer_norm_of_single_elements(kernels):
    # var = 0: y = bias exactly here; PyTorch's one-pass variance leaves ~1e-12 of rounding noise
    # that rstd = 1/sqrt(eps) amplifies to ~3e-5, hence the atol
    def fn(mod):
        return lambda x, w, b: mod.layer_norm(x, (1,), w, b)

    check_op([(3, 1), (1,), (1,)], fn(F), fn(TF), rtol=1e-4, atol=1e-4)


def test_layer_norm_optional_parameters(kernels):
    check_op([(3, 6)], lambda x: F.layer_norm(x, (6,)), lambda x: TF.layer_norm(x, (6,)), **RED)
    check_op([(3, 6), (6,)], lambda x, w: F.layer_norm(x, [6], w), lambda x, w: TF.layer_norm(x, [6], w),
             **RED)
    check_op([(3, 6), (6,)], lambda x, b: F.layer_norm(x, 6, None, b, 1e-3),
             lambda x, b: TF.layer_norm(x, [6], None, b, 1e-3), **RED)


def test_layer_norm_noncontiguous_and_float64(kernels):
    def fn(mod):
        return lambda x, w, b: mod.layer_norm(x, (5,), w, b)

    check_op([(4, 5), (5,), (5,)], fn(F), fn(TF), noncontiguous=True, **RED)
    check_op([(2, 3, 5), (5,), (5,)], fn(F), fn(TF), dtype="float64", **RED)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_norms_half_precision(kernels, dtype):
    check_op([(3, 8), (8,), (8,)], lambda x, w, b: F.layer_norm(x, (8,), w, b),
             lambda x, w, b: TF.layer_norm(x, (8,), w, b), dtype=dtype, **RED)
    check_op([(3, 8), (8,)], lambda x, w: F.rms_norm(x, (8,), w), lambda x, w: TF.rms_norm(x, (8,), w),
             dtype=dtype, **RED)


@pytest.mark.parametrize("x_shape,norm_shape", [((4, 7), (7,)), ((2, 3, 4), (3, 4)), ((5,), (5,))])
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm(kernels, x_shape, norm_shape, eps):
    check_op([x_shape, norm_shape], lambda x, w: F.rms_norm(x, norm_shape, w, eps),
             lambda x, w: TF.rms_norm(x, norm_shape, w, eps), **RED)
    check_op([x_shape], lambda x: F.rms_norm(x, norm_shape, eps=eps),
             lambda x: TF.rms_norm(x, norm_shape, eps=eps), **RED)


def test_rms_norm_noncontiguous_float64(kernels):
    check_op([(6, 4), (4,)], lambda x, w: F.rms_norm(x, [4], w), lambda x, w: TF.rms_norm(x, [4], w),
             noncontiguous=True, **RED)
    check_op([(3, 4), (4,)], lambda x, w: F.rms_norm(x, [4], w), lambda x, w: TF.rms_norm(x, [4], w),
             dtype="float64", **RED)


@pytest.mark.parametrize("x_shape,groups", [((2, 6, 5), 3), ((2, 4, 3, 3), 2), ((3, 6), 2),
                                            ((1, 6, 2, 2), 1)])
def test_group_norm(kernels, x_shape, groups):
    c = x_shape[1]
    check_op([x_shape, (c,), (c,)], lambda x, w, b: F.group_norm(x, groups, w, b),
             lambda x, w, b: TF.group_norm(x, groups, w, b), **RED)
    check_op([x_shape], lambda x: F.group_norm(x, groups, eps=1e-3),
             lambda x: TF.group_norm(x, groups, eps=1e-3), **RED)


def test_norms_save_statistics_not_normalized_input():
    x = tinyml.randn(5, 8, requires_grad=True)
    w, b = tinyml.randn(8, requires_grad=True), tinyml.randn(8, requires_grad=True)
    y = F.layer_norm(x, (8,), w, b)
    shapes = [tuple(e[0].shape) for e in y.grad_fn._saved if e is not None]
    assert sorted(shapes) == sorted([(5, 8), (8,), (5,), (5,)])  # x, weight, mean, rstd
    y = F.rms_norm(x, (8,), w)
    shapes = [tuple(e[0].shape) for e in y.grad_fn._saved if e is not None]
    assert sorted(shapes) == sorted([(5, 8), (8,), (5,)])  # x, weight, rstd


def test_gradcheck_float64():
    rng = np.random.default_rng(0)
    x = tinyml.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    w = tinyml.tensor(rng.standard_normal(5), requires_grad=True)
    b = tinyml.tensor(rng.standard_normal(5), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b), [x, w, b])
    assert gradcheck(lambda x, w: F.rms_norm(x, (5,), w, 1e-6), [x, w])
    g = tinyml.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True)
    assert gradcheck(lambda g: F.group_norm(g, 2), [g])


def test_errors_name_shapes():
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[4\], expected input with shape \[\*, 4\], "
                                           r"but got input of size\[2, 3\]"):
        F.layer_norm(tinyml.randn(2, 3), (4,))
    with pytest.raises(RuntimeError, match=r"weight of shape \[3\] and normalized_shape = \[4\]"):
        F.layer_norm(tinyml.randn(2, 4), (4,), tinyml.randn(3))
    with pytest.raises(RuntimeError, match=r"normalized_shape=\[2, 3\].*size\[3, 2\]"):
        F.rms_norm(tinyml.randn(3, 2), (2, 3))
    with pytest.raises(RuntimeError, match=r"divisible by num_groups.*\[2, 6, 4\] and num_groups=4"):
        F.group_norm(tinyml.randn(2, 6, 4), 4)
    with pytest.raises(RuntimeError, match=r"weight of shape \[5\] and input of shape \[2, 6\]"):
        F.group_norm(tinyml.randn(2, 6), 3, tinyml.randn(5))
    with pytest.raises(RuntimeError, match="floating point.*int64"):
        F.layer_norm(tinyml.tensor([[1, 2]]), (2,))


# -- every backend of the family ------------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 33])
def test_layer_norm_on_every_backend(backend_device, n):
    check_op([(3, n), (n,), (n,)], lambda x, w, b: F.layer_norm(x, (n,), w, b),
             lambda x, w, b: TF.layer_norm(x, (n,), w, b), device=backend_device, **RED)
    check_op([(2, 3, n)], lambda x: F.layer_norm(x, (n,)), lambda x: TF.layer_norm(x, (n,)),
             device=backend_device, **RED)


def test_rms_norm_on_every_backend(backend_device):
    check_op([(3, 10), (10,)], lambda x, w: F.rms_norm(x, (10,), w, eps=1e-6),
             lambda x, w: TF.rms_norm(x, (10,), w, eps=1e-6), device=backend_device, **RED)


# -- the C++ kernels (csrc/norm.cpp) called directly, against the reference ------------------------
CPU_SHAPES = [(1, 1), (1, 7), (3, 33), (17, 129), (40, 1001)]  # the last one runs on every thread


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CPU_SHAPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_cpu_layer_norm_kernels(dtype, shape, affine):
    rng = np.random.default_rng(2)
    x, dy = rand(rng, shape, dtype, 3.0) + dtype(1.5), rand(rng, shape, dtype)
    w = rand(rng, shape[-1:], dtype) if affine != "none" else None
    b = rand(rng, shape[-1:], dtype) if affine == "both" else None
    fwd_ref = impls("layer_norm_forward")[1](x, w, b, 1e-5)
    close(_C.layer_norm_forward(x, w, b, 1e-5), fwd_ref, dtype, "layer_norm")
    close(impls("layer_norm_forward")[0](x, w, b, 1e-5), fwd_ref, dtype, "layer_norm adapter")
    _, mean, rstd = fwd_ref
    bwd_ref = impls("layer_norm_backward")[1](dy, x, w, mean, rstd)
    close(_C.layer_norm_backward(dy, x, w, mean, rstd), bwd_ref, dtype, "layer_norm backward")


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CPU_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_cpu_rms_norm_kernels(dtype, shape, affine):
    rng = np.random.default_rng(3)
    x, dy = rand(rng, shape, dtype, 2.0), rand(rng, shape, dtype)
    w = rand(rng, shape[-1:], dtype) if affine else None
    fwd_ref = impls("rms_norm_forward")[1](x, w, 1e-6)
    close(_C.rms_norm_forward(x, w, 1e-6), fwd_ref, dtype, "rms_norm")
    bwd_ref = impls("rms_norm_backward")[1](dy, x, w, fwd_ref[1])
    close(_C.rms_norm_backward(dy, x, w, fwd_ref[1]), bwd_ref, dtype, "rms_norm backward")
    close(impls("rms_norm_backward")[0](dy.T.copy().T, x, w, fwd_ref[1]), bwd_ref, dtype, "rms_norm adapter")


@needs_C
def test_cpu_norm_weight_grad_is_deterministic_across_threads():
    # dweight sums over rows through per-thread partial buffers: the result must match the
    # reference for any thread count (1 thread = the serial order)
    rng = np.random.default_rng(4)
    x, dy = rand(rng, (301, 257), np.float32), rand(rng, (301, 257), np.float32)
    w = rand(rng, (257,), np.float32)
    _, mean, rstd = _C.layer_norm_forward(x, w, None, 1e-5)
    before = tinyml.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            tinyml.set_num_threads(n)
            outs.append(_C.layer_norm_backward(dy, x, w, mean, rstd))
    finally:
        tinyml.set_num_threads(before)
    ref = impls("layer_norm_backward")[1](dy, x, w, mean, rstd)
    for out in outs:
        close(out, ref, np.float32, "layer_norm backward")


@needs_C
def test_cpu_norm_binding_errors():
    f32 = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError, match=r"weight has shape \(7,\).*\(4, 8\)"):
        _C.layer_norm_forward(f32, np.ones(7, np.float32), None, 1e-5)
    with pytest.raises(TypeError, match="float64"):
        _C.layer_norm_forward(f32, np.ones(8, np.float64), None, 1e-5)
    with pytest.raises(ValueError, match=r"rstd has shape \(3,\)"):
        _C.rms_norm_backward(f32, f32, None, np.ones(3, np.float32))
