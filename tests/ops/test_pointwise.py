"""where, minimum/maximum, clamp, masked_fill, lerp, addcmul, addcdiv (ops/pointwise.py): forward and
backward against PyTorch, on reference and cpu kernels, and on every backend of the family
(backend_device: the numpy reference, the cpu device's kernels, the Triton kernels)."""
import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml

backend_device = backend_device_fixture()


def test_where(kernels):
    def cond(c):
        return c > 0
    check_op([(3, 4), (3, 4), (4,)], lambda c, a, b: a.where(cond(c), b) if isinstance(a, tinyml.Tensor)
             else torch.where(cond(c), a, b), noncontiguous=True)
    check_op([(3, 1), (4,)], lambda c, a: tinyml.where(cond(c), a, 0.5) if isinstance(a, tinyml.Tensor)
             else torch.where(cond(c), a, 0.5))
    check_op([(3, 1), (4,)], lambda c, a: tinyml.where(cond(c), 2, a) if isinstance(a, tinyml.Tensor)
             else torch.where(cond(c), 2, a))
    check_op([(2, 3), (2, 3)], lambda c, a: tinyml.where(cond(c), a, 7) if isinstance(a, tinyml.Tensor)
             else torch.where(cond(c), a, 7), dtype="int32", low=-3, high=3)
    out = tinyml.where(tinyml.tensor([True, False]), 1.0, 2)
    assert out.tolist() == [1.0, 2.0] and out.dtype is tinyml.float32
    with pytest.raises(RuntimeError, match="boolean.*float32"):
        tinyml.where(tinyml.ones(2), tinyml.ones(2), 0.0)
    with pytest.raises(TypeError, match="both input and other"):
        tinyml.where(tinyml.ones(2) > 0, tinyml.ones(2))


def test_minimum_maximum_split_ties(kernels):
    a = np.array([1.0, 2.0, 3.0, 2.0, -1.0])
    b = np.array([1.0, 3.0, 3.0, 1.0, -1.0])
    check_op([], lambda x, y: x.maximum(y), inputs=[a, b])
    check_op([], lambda x, y: x.minimum(y), inputs=[a, b])
    check_op([(3, 4), (4,)], lambda x, y: x.maximum(y), dtype="int32", low=-3, high=3)
    check_op([(3,), (3,)], lambda x, y: x.minimum(y), dtype="bool")
    nan = tinyml.maximum(tinyml.tensor([np.nan, 1.0]), tinyml.tensor([0.0, np.nan]))
    assert np.isnan(nan.numpy()).all()


def test_clamp_scalars(kernels):
    check_op([(4, 5)], lambda x: x.clamp(-0.5, 0.5), noncontiguous=True)
    check_op([(4, 5)], lambda x: x.clamp(min=0.0))
    check_op([(4, 5)], lambda x: x.clamp(max=0.25))
    check_op([(4, 5)], lambda x: x.clip(0.5, -0.5))  # min > max: everything is max, as torch
    boundaries = np.array([-1.0, 1.0, 0.0, 2.0, -3.0])
    check_op([], lambda x: x.clamp(-1.0, 1.0), inputs=[boundaries])  # the boundaries themselves pass
    check_op([(6,)], lambda x: x.clamp(-2, 3), dtype="int64", low=-5, high=5)
    check_op([(6,)], lambda x: x.clamp(-2.5), dtype="int32", low=-5, high=5)  # promotes to float32
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        tinyml.ones(2).clamp()


def test_clamp_tensor_bounds(kernels):
    check_op([(3, 4), (4,), (3, 1)], lambda x, lo, hi: x.clamp(lo - 1, hi + 1))
    check_op([(3, 4), (4,)], lambda x, lo: x.clamp(min=lo))
    check_op([(3, 4), (4,)], lambda x, hi: x.clamp(max=hi))
    check_op([(3, 4), (4,), (4,)], lambda x, lo, hi: x.clamp(lo, hi))  # includes lo > hi positions


def test_masked_fill(kernels):
    def m(t):
        return t > 0.3
    check_op([(3, 4), (4,)], lambda x, s: x.masked_fill(m(s), -1.5))
    check_op([(3, 1), (3, 4)], lambda x, s: x.masked_fill(m(s), 2.0))  # mask broadcasts x
    check_op([(3, 4), (3, 4), ()], lambda x, s, v: x.masked_fill(m(s), v))  # 0-d tensor value gets a grad
    check_op([(3, 4), (3, 4)], lambda x, s: x.masked_fill(s > 0, 2.7), dtype="int64", low=-3, high=3)
    with pytest.raises(RuntimeError, match="boolean masks.*int64"):
        tinyml.ones(2).masked_fill(tinyml.tensor([1, 0]), 0.0)
    with pytest.raises(RuntimeError, match="0-dimensional value tensor.*1 dimension"):
        tinyml.ones(2).masked_fill(tinyml.tensor([True, False]), tinyml.ones(1))


def test_lerp(kernels):
    check_op([(3, 4), (4,)], lambda a, b: a.lerp(b, 0.3))
    check_op([(3, 4), (4,)], lambda a, b: a.lerp(b, 0.8))
    check_op([(3, 4), (3, 4), (3, 1)], lambda a, b, w: a.lerp(b, w), low=-0.5, high=1.5)
    check_op([(4, 3), (4, 3), (4, 3)], lambda a, b, w: a.lerp(b, w), noncontiguous=True)


@pytest.mark.parametrize("name", ["addcmul", "addcdiv"])
def test_addcmul_addcdiv(kernels, name):
    check_op([(3, 4), (4,), (3, 1)], lambda x, a, b: getattr(x, name)(a, b * b + 0.5))
    check_op([(3, 4), (3, 4), (3, 4)], lambda x, a, b: getattr(x, name)(a, b * b + 0.5, value=-0.5))
    check_op([(2, 3), (2, 3), (2, 3)], lambda x, a, b: getattr(x, name)(a, b, value=0.25), dtype="float64")
    check_op([(4, 3), (4, 3), (4, 3)], lambda x, a, b: getattr(x, name)(a, b * b + 0.5), noncontiguous=True)


def test_addcmul_integer_value_cast_and_addcdiv_error():
    check_op([(2, 3), (2, 3), (2, 3)], lambda x, a, b: x.addcmul(a, b, value=2.5), dtype="int64", low=-3,
             high=3)
    with pytest.raises(RuntimeError, match="Integer division with addcdiv"):
        tinyml.tensor([1]).addcdiv(tinyml.tensor([1]), tinyml.tensor([1]))


# -- every backend of the family ------------------------------------------------------------------
def _lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def test_where_on_every_backend(backend_device):
    out = check_op([(3, 4), (4,)], lambda a, b: _lib(a).where(a > b, a, b * 2), device=backend_device)
    assert out.device == backend_device


def test_clamp_minmax_masked_fill_on_every_backend(backend_device):
    check_op([(3, 4)], lambda x: x.clamp(-0.5, 0.7) + x.clamp(min=0.1) + x.clamp(max=0.2),
             device=backend_device)
    check_op([(3, 4), (3, 4), (4,)], lambda x, lo, hi: _lib(x).clamp(x, lo, hi), device=backend_device)
    check_op([(3, 4), (4,)], lambda a, b: _lib(a).maximum(a, b) + _lib(a).minimum(a, b),
             device=backend_device)
    ties = np.array([1.0, 2.0, 3.0], np.float32)
    check_op(None, lambda a, b: _lib(a).maximum(a, b), inputs=[ties, ties[::-1].copy()],
             device=backend_device)
    check_op([(3, 4)], lambda x: x.masked_fill(x > 0, -1.5), device=backend_device)


def test_lerp_addcmul_addcdiv_on_every_backend(backend_device):
    check_op([(3, 4), (3, 4), (4,)], lambda a, b, w: _lib(a).lerp(a, b, w), device=backend_device)
    check_op([(3, 4), (3, 4)], lambda a, b: _lib(a).lerp(a, b, 0.75), device=backend_device)
    check_op([(3, 4), (3, 4), (4,)], lambda x, a, b: _lib(x).addcmul(x, a, b, value=0.5),
             device=backend_device)
    check_op([(3, 4), (3, 4), (4,)], lambda x, a, b: _lib(x).addcdiv(x, a, b, value=-2),
             device=backend_device, low=0.5, high=2)
