"""The composed pools (ops/pool.py): adaptive_max_pool2d/1d, max_pool1d, avg_pool1d, adaptive_avg_pool1d
and their nn layers, forward and backward against PyTorch, indices, NaN, gradcheck in float64."""
import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck


def F(x):
    """The functional module of x's library."""
    return tinyml.nn.functional if isinstance(x, tinyml.Tensor) else torch.nn.functional


def nn(x):
    return tinyml.nn if isinstance(x, tinyml.Tensor) else torch.nn


@pytest.mark.parametrize("out", [(3, 4), 1, (7, 9), (5, 2), (None, 3), (4, None)])
def test_adaptive_max_pool2d_matches_torch(out):
    check_op([(2, 3, 7, 9)], lambda x: F(x).adaptive_max_pool2d(x, out))
    check_op([(3, 7, 9)], lambda x: F(x).adaptive_max_pool2d(x, out, return_indices=True)[1], grad=False)


def test_adaptive_max_pool2d_indices_nan_and_float64():
    a = np.random.default_rng(1).standard_normal((1, 2, 5, 6))
    a[0, 1, 2, 3] = np.nan
    check_op([], lambda x: F(x).adaptive_max_pool2d(x, (2, 3), return_indices=True)[0], inputs=[a],
             grad=False)
    check_op([], lambda x: F(x).adaptive_max_pool2d(x, (2, 4), return_indices=True)[1], inputs=[a],
             grad=False)
    check_op([(2, 2, 6, 5)], lambda x: F(x).adaptive_max_pool2d(x, 3), dtype="float64")
    x = tinyml.tensor(np.random.default_rng(2).permutation(60).reshape(1, 3, 4, 5) / 7.0, requires_grad=True)
    assert gradcheck(lambda t: tinyml.nn.functional.adaptive_max_pool2d(t, (3, 2)), [x])


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=2, stride=1, dilation=2),
                                    dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_max_pool1d_matches_torch(kwargs):
    check_op([(2, 4, 11)], lambda x: F(x).max_pool1d(x, **kwargs))
    check_op([(4, 11)], lambda x: F(x).max_pool1d(x, return_indices=True, **kwargs)[1], grad=False)
    check_op([(2, 4, 11)], lambda x: nn(x).MaxPool1d(**kwargs)(x))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                    dict(kernel_size=4, stride=3, ceil_mode=True)])
def test_avg_pool1d_matches_torch(kwargs):
    check_op([(2, 3, 10)], lambda x: F(x).avg_pool1d(x, **kwargs))
    check_op([(2, 3, 10)], lambda x: nn(x).AvgPool1d(**kwargs)(x))


@pytest.mark.parametrize("size", [1, 3, 4, 7])
def test_adaptive_pool1d_matches_torch(size):
    check_op([(2, 3, 10)], lambda x: F(x).adaptive_avg_pool1d(x, size))
    check_op([(2, 3, 10)], lambda x: F(x).adaptive_max_pool1d(x, size))
    check_op([(3, 10)], lambda x: nn(x).AdaptiveMaxPool1d(size, return_indices=True)(x)[1], grad=False)
    check_op([(2, 3, 10)], lambda x: nn(x).AdaptiveAvgPool1d(size)(x))
    check_op([(2, 3, 6, 10)], lambda x: nn(x).AdaptiveMaxPool2d((2, size))(x))


def test_errors_name_the_shapes_and_sizes():
    with pytest.raises(RuntimeError, match=r"max_pool1d.*2D or 3D.*\(1, 2, 3, 4\)"):
        tinyml.nn.functional.max_pool1d(tinyml.ones(1, 2, 3, 4), 2)
    with pytest.raises(RuntimeError, match=r"adaptive_max_pool2d.*positive.*\(0, 2\)"):
        tinyml.nn.functional.adaptive_max_pool2d(tinyml.ones(1, 2, 3, 4), (0, 2))
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        tinyml.nn.functional.adaptive_max_pool2d(tinyml.ones(3, 4), 2)
    with pytest.raises(TypeError, match="kernel_size"):
        tinyml.nn.functional.avg_pool1d(tinyml.ones(1, 2, 5), 2.5)


def test_layer_reprs_match_torch():
    for name, args in (("MaxPool1d", (3, 2)), ("AdaptiveMaxPool2d", ((2, 3),)), ("AdaptiveAvgPool1d", (4,))):
        assert repr(getattr(tinyml.nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))
