"""layer_norm, rms_norm, group_norm: forward and backward against torch.nn.functional."""
import numpy as np
import pytest
import torch.nn.functional as TF
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

RED = {"kind": "reduction"}


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
