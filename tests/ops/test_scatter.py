"""gather, scatter, scatter_add, index_select, index_add, one_hot (ops/scatter.py) against PyTorch,
forward and backward, on reference and cpu kernels, and on every backend of the family
(backend_device: the numpy reference, the cpu device's kernels, the Triton kernels)."""
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml

backend_device = backend_device_fixture()


def T(x, data, dtype=None):
    """A tensor of `data` in the library of x (tinyml or torch)."""
    if isinstance(x, tinyml.Tensor):
        return tinyml.tensor(data, dtype=dtype and getattr(tinyml, dtype))
    return torch.tensor(data, dtype=dtype and getattr(torch, dtype))


def test_gather(kernels):
    check_op([(3, 4)], lambda x: x.gather(1, T(x, [[0, 0, 3], [1, 2, 1], [3, 3, 3]])), noncontiguous=True)
    check_op([(3, 4)], lambda x: x.gather(0, T(x, [[2, 2], [0, 2]])))  # index smaller than x
    check_op([(2, 3, 4)], lambda x: x.gather(-1, T(x, [[[1], [3], [0]]] * 2)))
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        tinyml.zeros(2, 4).gather(1, tinyml.tensor([[4]]))
    with pytest.raises(RuntimeError, match="Expected dtype int64 for index"):
        tinyml.zeros(2, 4).gather(1, tinyml.tensor([[1]], dtype=tinyml.int32))


@pytest.mark.filterwarnings("ignore:The reduce argument")
def test_scatter(kernels):
    idx = [[0, 2], [1, 0], [2, 1]]
    check_op([(3, 4), (3, 2)], lambda x, s: x.scatter(0, T(x, idx), s))
    # src larger than index
    check_op([(3, 4), (3, 5)], lambda x, s: x.scatter(1, T(x, [[3, 1], [0, 2], [1, 1]]), s), grad=False)
    check_op([(3, 4)], lambda x: x.scatter(1, T(x, [[3], [0], [1]]), 2.5), noncontiguous=True)
    out = tinyml.ones(2, 3).scatter(1, tinyml.tensor([[0, 0], [2, 1]]), tinyml.full((2, 2), 2.0),
                                    reduce="multiply")
    want = torch.ones(2, 3).scatter(1, torch.tensor([[0, 0], [2, 1]]), torch.full((2, 2), 2.0),
                                    reduce="multiply")
    assert out.tolist() == want.tolist()
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        tinyml.zeros(2).scatter(0, tinyml.tensor([0]), tinyml.ones(1, dtype=tinyml.float64))


def test_scatter_add_repeated(kernels):
    idx = [[0, 0, 0, 2], [1, 1, 0, 0]]
    check_op([(3, 4), (2, 4)], lambda x, s: x.scatter_add(0, T(x, idx), s))
    check_op([(2, 5), (2, 2)], lambda x, s: x.scatter_add(1, T(x, [[4, 4], [0, 4]]), s), noncontiguous=True)
    # src larger than index: only its leading part is used (PyTorch cannot differentiate this case)
    check_op([(2, 5), (2, 3)], lambda x, s: x.scatter_add(1, T(x, [[4, 4], [0, 4]]), s), grad=False)


def test_index_select_index_add(kernels):
    check_op([(4, 3)], lambda x: x.index_select(0, T(x, [3, 0, 3, 3])), noncontiguous=True)
    check_op([(4, 3)], lambda x: x.index_select(-1, T(x, [2, 1], "int32")))
    check_op([(4, 3), (5, 3)], lambda x, s: x.index_add(0, T(x, [1, 1, 0, 3, 1]), s, alpha=2.0))
    check_op([(2, 4), (2, 2)], lambda x, s: x.index_add(1, T(x, [3, 3]), s), noncontiguous=True)
    with pytest.raises(IndexError, match="Index is supposed to be a vector"):
        tinyml.zeros(3).index_select(0, tinyml.tensor([[0]]))
    with pytest.raises(RuntimeError, match=r"source of shape \(2, 3\) does not match"):
        tinyml.zeros(4, 3).index_add(0, tinyml.tensor([0]), tinyml.ones(2, 3))


# -- every backend of the family ------------------------------------------------------------------
def _lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def _idx(x, v):
    return _lib(x).tensor(v, device=x.device)


def test_index_select_and_index_add_on_every_backend(backend_device):
    check_op([(3, 4, 5)], lambda x: x.index_select(1, _idx(x, [3, 0, 3])), device=backend_device)
    check_op([(3, 4, 5), (3, 2, 5)], lambda x, s: x.index_add(1, _idx(x, [3, 0]), s, alpha=2.0),
             device=backend_device)
    check_op([(3, 4, 5), (3, 3, 5)], lambda x, s: x.index_add(1, _idx(x, [3, 3, 0]), s),
             device=backend_device)


def test_gather_scatter_on_every_backend(backend_device):
    index = [[0, 1], [3, 3], [2, 0]]
    check_op([(3, 4)], lambda x: x.gather(1, _idx(x, index)), device=backend_device, noncontiguous=True)
    check_op([(3, 4), (3, 2)], lambda x, s: x.scatter_add(1, _idx(x, index), s), device=backend_device)
    check_op([(3, 4), (3, 2)], lambda x, s: x.scatter(1, _idx(x, [[0, 1], [3, 2], [2, 0]]), s),
             device=backend_device)
    check_op([(3, 4)], lambda x: x.scatter(1, _idx(x, [[0, 1], [3, 2], [2, 0]]), 2.5), device=backend_device)


@pytest.mark.filterwarnings("ignore")
def test_scatter_multiply_repeated_targets(backend_device):
    check_op([(3, 4), (3, 4)],
             lambda x, s: x.scatter(0, _idx(x, [[0, 1], [2, 2], [2, 2]]), s, reduce="multiply"),
             device=backend_device, grad=False)


def test_one_hot_on_every_backend(backend_device):
    check_op([(3,)], lambda x: _lib(x).nn.functional.one_hot(_idx(x, [0, 2, 1, 2]), 4), device=backend_device,
             grad=False)
    check_op([(3,)], lambda x: _lib(x).nn.functional.one_hot(_idx(x, [0, 2, 1, 2])), device=backend_device,
             grad=False)
