"""Indexing, gather/scatter and friends on the cuda device (Triton kernels) against PyTorch,
forward and backward. Without a GPU they run in Triton's interpreter: small shapes."""
import pytest
import torch
from helpers import check_op

import tinyml

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"


def lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def idx(x, v):
    return lib(x).tensor(v, device=x.device)


def test_advanced_index_placements():
    check_op([(3, 4, 5)], lambda x: x[idx(x, [0, 2, 2, -1])], device=CUDA)
    check_op([(3, 4, 5)], lambda x: x[:, idx(x, [[0, 3], [1, 1]])], device=CUDA, noncontiguous=True)
    check_op([(3, 4, 5)], lambda x: x[idx(x, [0, 2]), :, idx(x, [1, 4])], device=CUDA)
    check_op([(3, 4, 5)], lambda x: x[1:, idx(x, [0, 2]), idx(x, [1, 4])], device=CUDA)


def test_masks_and_nonzero():
    check_op([(3, 4)], lambda x: x[x > 0], device=CUDA)
    check_op([(3, 4)], lambda x: lib(x).nonzero(x > 0), device=CUDA, grad=False)
    check_op([(40, 30)], lambda x: lib(x).nonzero(x > 1.0), device=CUDA, grad=False)  # two blocks


def test_setitem():
    def put(x):
        y = x * 1
        y[idx(x, [0, 2])] = 7.0
        y[1, idx(x, [1, 3])] = x[0, :2]
        return y

    check_op([(3, 4)], put, device=CUDA)


def test_out_of_range_index_raises():
    x = tinyml.zeros(3, device=CUDA)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x[tinyml.tensor([5], device=CUDA)]


def test_index_select_and_index_add():
    check_op([(3, 4, 5)], lambda x: x.index_select(1, idx(x, [3, 0, 3])), device=CUDA)
    check_op([(3, 4, 5), (3, 2, 5)], lambda x, s: x.index_add(1, idx(x, [3, 0]), s, alpha=2.0), device=CUDA)
    check_op([(3, 4, 5), (3, 3, 5)], lambda x, s: x.index_add(1, idx(x, [3, 3, 0]), s), device=CUDA)


def test_gather_scatter():
    index = [[0, 1], [3, 3], [2, 0]]
    check_op([(3, 4)], lambda x: x.gather(1, idx(x, index)), device=CUDA, noncontiguous=True)
    check_op([(3, 4), (3, 2)], lambda x, s: x.scatter_add(1, idx(x, index), s), device=CUDA)
    check_op([(3, 4), (3, 2)], lambda x, s: x.scatter(1, idx(x, [[0, 1], [3, 2], [2, 0]]), s), device=CUDA)
    check_op([(3, 4)], lambda x: x.scatter(1, idx(x, [[0, 1], [3, 2], [2, 0]]), 2.5), device=CUDA)


@pytest.mark.filterwarnings("ignore")
def test_scatter_multiply_repeated_targets():
    check_op([(3, 4), (3, 4)], lambda x, s: x.scatter(0, idx(x, [[0, 1], [2, 2], [2, 2]]), s, reduce="multiply"),
             device=CUDA, grad=False)


def test_one_hot():  # embedding on every backend: tests/ops/test_embedding.py
    check_op([(3,)], lambda x: lib(x).nn.functional.one_hot(idx(x, [0, 2, 1, 2]), 4), device=CUDA, grad=False)
    check_op([(3,)], lambda x: lib(x).nn.functional.one_hot(idx(x, [0, 2, 1, 2])), device=CUDA, grad=False)
