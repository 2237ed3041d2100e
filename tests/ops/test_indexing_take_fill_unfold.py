"""take, index_fill / index_fill_, Tensor.unfold (ops/indexing.py) and the in-place unary twins
(ops/unary_inplace.py): against PyTorch, forward and backward, errors naming the values."""
import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck


def lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def test_take_matches_torch():
    check_op([(3, 4)], lambda x: lib(x).take(x, lib(x).tensor([[0, 5], [-1, 5]])))
    check_op([(2, 3)], lambda x: x.take(lib(x).tensor(4)))
    check_op([(3, 4)], lambda x: x.take(lib(x).tensor([], dtype=lib(x).int64)))


def test_take_errors_name_the_index_and_size():
    with pytest.raises(IndexError, match=r"index 12 is out of range.*12 elements.*\(3, 4\)"):
        tinyml.take(tinyml.ones(3, 4), tinyml.tensor([0, 12]))
    with pytest.raises(RuntimeError, match="long tensor.*float32"):
        tinyml.take(tinyml.ones(3), tinyml.tensor([0.0]))


@pytest.mark.parametrize("dim,index", [(1, [0]), (0, [2, 0, 2]), (-1, [3, 1]), (1, [])])
def test_index_fill_matches_torch(dim, index):
    check_op([(3, 4)], lambda x: x.index_fill(dim, lib(x).tensor(index, dtype=lib(x).int64), -1.5))
    check_op([(3, 4)], lambda x: (x * 1).index_fill_(dim, lib(x).tensor(index, dtype=lib(x).int64), 2.0))
    check_op([(3, 4), ()], lambda x, v: x.index_fill(dim, lib(x).tensor(index, dtype=lib(x).int64), v))
    check_op([(3, 4)], lambda x: x.index_fill(dim, lib(x).tensor(index, dtype=lib(x).int64), 7),
             dtype="int64")


def test_index_fill_errors():
    x = tinyml.ones(3, 4)
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        x.index_fill(1, tinyml.tensor([4]), 0.0)
    with pytest.raises(IndexError, match="index -1 is out of bounds for dimension 1 with size 4"):
        x.index_fill(1, tinyml.tensor([-1]), 0.0)  # PyTorch refuses negative indices here too
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        x.index_fill(2, tinyml.tensor([0]), 0.0)
    with pytest.raises(RuntimeError, match=r"0-dimensional value.*\(2,\)"):
        x.index_fill(0, tinyml.tensor([0]), tinyml.ones(2))
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tinyml.ones(2, requires_grad=True).index_fill_(0, tinyml.tensor([0]), 1.0)


@pytest.mark.parametrize("shape,dim,size,step", [((3, 7), 1, 2, 1), ((3, 7), 1, 3, 2), ((5, 2, 3), 0, 5, 1),
                                                 ((4, 6), -2, 1, 3), ((), 0, 1, 1), ((6,), 0, 0, 2)])
def test_unfold_matches_torch(shape, dim, size, step):
    check_op([shape], lambda x: x.unfold(dim, size, step))


def test_unfold_errors_and_gradcheck():
    with pytest.raises(RuntimeError, match="maximum size for tensor at dimension 1 is 4 but size is 5"):
        tinyml.ones(3, 4).unfold(1, 5, 1)
    with pytest.raises(RuntimeError, match="step is 0"):
        tinyml.ones(3, 4).unfold(1, 2, 0)
    x = tinyml.tensor(np.random.default_rng(0).standard_normal((3, 6)), requires_grad=True)
    assert gradcheck(lambda t: t.unfold(1, 3, 2) * t.unfold(1, 3, 2), [x])


@pytest.mark.parametrize("name,low,high", [("relu_", -2, 2), ("sigmoid_", -2, 2), ("tanh_", -2, 2),
                                           ("abs_", -2, 2), ("log_", 0.1, 2), ("sin_", -2, 2),
                                           ("floor_", -3, 3), ("asin_", -0.9, 0.9), ("erfinv_", -0.9, 0.9)])
def test_in_place_unary_matches_torch(name, low, high):
    def fn(x):
        y = x * 1  # in place on a non-leaf, as torch requires when recording
        out = getattr(y, name)()
        assert out is y
        return y

    check_op([(3, 4)], fn, low=low, high=high)


def test_in_place_unary_rules():
    x = tinyml.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast.*int64"):
        x.sqrt_() if hasattr(x, "sqrt_") else x.log_()
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tinyml.ones(2, requires_grad=True).relu_()
    y = tinyml.tensor([-1.0, 0.5])
    v = y[1:]
    y.relu_()
    assert v.tolist() == [0.5] and y.tolist() == [0.0, 0.5]
    z = tinyml.tensor([2.0, -3.0])
    assert z.copysign_(-1.0).tolist() == [-2.0, -3.0] and tinyml.relu_(z).tolist() == [0.0, 0.0]
