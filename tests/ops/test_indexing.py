"""Indexing (ops/indexing.py) against PyTorch: getitem/setitem (basic, advanced, masks, mixed),
masked_select, take_along_dim, nonzero, one_hot, on reference and cpu kernels, and on every
backend of the family (backend_device: the numpy reference, the cpu device's kernels, the Triton
kernels). gather/scatter/index_select/index_add are in test_scatter.py, embedding in
test_embedding.py."""
import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()


def T(x, data, dtype=None):
    """A tensor of `data` in the library of x (tinyml or torch)."""
    if isinstance(x, tinyml.Tensor):
        return tinyml.tensor(data, dtype=dtype and getattr(tinyml, dtype))
    return torch.tensor(data, dtype=dtype and getattr(torch, dtype))


# ---- getitem -----------------------------------------------------------------------------------
BASIC = [
    lambda x: x[1],
    lambda x: x[-1, 2],
    lambda x: x[1:3],
    lambda x: x[::2, 1:, -3:-1],
    lambda x: x[:, None, 0:4:3, None],
    lambda x: x[..., 1],
    lambda x: x[0, ..., None],
    lambda x: x[...],
    lambda x: x[10:],
    lambda x: x[-100:2, 3:1],
    lambda x: x[True],
    lambda x: x[1, False],
    lambda x: x[2, 3, 4],
]


@pytest.mark.parametrize("i", range(len(BASIC)))
def test_getitem_basic(kernels, i):
    check_op([(4, 5, 6)], BASIC[i], noncontiguous=True)


ADVANCED = [
    lambda x: x[[0, 2, 2, 0]],  # repeated indices: the gradient accumulates
    lambda x: x[T(x, [-1, 0, -4])],
    lambda x: x[:, T(x, [[1, 1], [4, 0]])],
    lambda x: x[T(x, [0, 1]), :, T(x, [3, 5])],  # separated index tensors: their dim goes first
    lambda x: x[:, T(x, [0, 1, 1]), T(x, [5, 5, 0])],  # adjacent: in place
    lambda x: x[T(x, [[0], [3]]), T(x, [1, 2, 1])],  # broadcast index tensors
    lambda x: x[0, :, T(x, [0, 2])],  # ints are basic: x[0] first, then [:, idx]
    lambda x: x[T(x, [1, 2]), 1:4, 2],
    lambda x: x[None, T(x, [0, 1]), None, T(x, [1, 2])],
    lambda x: x[..., T(x, [4, 4, 1])],
    lambda x: x[T(x, 2)],  # 0-d index tensor: a copy, like x[2]
    lambda x: x[[]],
    lambda x: x[T(x, [1, 3], "int32")],
]


@pytest.mark.parametrize("i", range(len(ADVANCED)))
def test_getitem_advanced(kernels, i):
    check_op([(4, 5, 6)], ADVANCED[i], noncontiguous=True)


MASKS = [
    lambda x: x[x > 0],
    lambda x: x[x[:, :, 0] > 0],
    lambda x: x[:, T(x, [True, False, True, True, False])],
    lambda x: x[1, :, T(x, [True, False] * 3)],
    lambda x: x[T(x, [False] * 4)],
    lambda x: x[[True, False, True, False], 2:],
    lambda x: x[x[0, 0, 0] > -9, 1],  # 0-d bool tensor mask
    lambda x: x[x[0, 0, 0] > 9],
]


@pytest.mark.parametrize("i", range(len(MASKS)))
def test_getitem_masks(kernels, i):
    check_op([(4, 5, 6)], MASKS[i], noncontiguous=True)


def test_getitem_int_and_0d(kernels):
    check_op([(6,)], lambda x: x[T(x, [[0, 1], [5, 5]])], dtype="int64", low=-9, high=9)
    check_op([()], lambda x: x[None])
    check_op([()], lambda x: x[...])
    check_op([(3,)], lambda x: x[1][None])


def test_getitem_basic_is_view_advanced_is_copy():
    x = tinyml.zeros(3, 4)
    v = x[1:, ::2]
    assert v._version is x._version
    v[0, 1] = 5.0
    assert x[1, 2].item() == 5.0
    w = x[0]
    w.fill_(2.0)
    assert x.sum().item() == 13.0
    c = x[[0, 1]]
    c.fill_(-1.0)
    assert x.sum().item() == 13.0
    m = x[x > 1]
    m.fill_(0.0)
    assert x.sum().item() == 13.0


def test_getitem_errors():
    x = tinyml.zeros(4, 5)
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 0 with size 4"):
        x[4]
    with pytest.raises(IndexError, match="index -6 is out of bounds for dimension 1 with size 5"):
        x[0, -6]
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 1 with size 5"):
        x[:, tinyml.tensor([1, 7])]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        x[::-1]
    with pytest.raises(IndexError, match="too many indices for tensor of dimension 2"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="invalid index of a 0-dim tensor"):
        tinyml.tensor(1.0)[0]
    with pytest.raises(IndexError, match="must be long, int, byte or bool tensors, got tinyml.float32"):
        x[tinyml.tensor([1.0])]
    with pytest.raises(IndexError,
                       match=r"shape of the mask \[3\] at index 0 does not match .* \[4, 5\] at index 0"):
        x[tinyml.tensor([True, False, True])]
    with pytest.raises(IndexError, match=r"could not be broadcast together with shapes \[2\], \[3\]"):
        x[tinyml.tensor([0, 1]), tinyml.tensor([0, 1, 2])]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(IndexError, match="valid indices"):
        x["a"]


# ---- setitem -----------------------------------------------------------------------------------
SETS = [  # (index of y, as a function of y; value shape)
    (lambda y: 1, (5, 6)),
    (lambda y: (slice(None), slice(1, 4, 2)), (1, 6)),
    (lambda y: (0, slice(None), 2), ()),
    (lambda y: [0, 2], (2, 5, 6)),
    (lambda y: (T(y, [0, 1]), slice(None), T(y, [3, 5])), (5,)),
    (lambda y: y > 0.5, ()),
    (lambda y: (Ellipsis, T(y, [True] * 3 + [False] * 3)), (1, 3)),
    (lambda y: (slice(1, 3), None), (1, 1, 2, 1, 5, 6)),  # leading size-1 dims of the value are dropped
]


@pytest.mark.parametrize("i", range(len(SETS)))
def test_setitem_autograd(kernels, i):
    where, vshape = SETS[i]

    def fn(x, v):
        y = x * 1.0
        y[where(y)] = v
        return y * 2

    check_op([(4, 5, 6), vshape], fn)


def test_setitem_scalar_and_through_graph(kernels):
    def fn(x):
        y = x * 3.0
        y[1:, 0] = 0.5
        y[[0, 0]] = -1.0
        return y.sum(dim=1)

    check_op([(3, 4)], fn)

    def alias(x):  # the value is read before the write (PyTorch refuses overlap: clone there)
        y = x + 0
        y[1:] = y[:-1] if isinstance(x, tinyml.Tensor) else y[:-1].clone()
        return y

    check_op([(4, 3)], alias)
    with tinyml.no_grad():
        z = tinyml.arange(5)
        z[1:] = z[:-1]
    assert z.tolist() == [0, 0, 1, 2, 3]


def test_setitem_no_grad_writes_storage(kernels):
    x = tinyml.zeros(3, 4)
    base_view = x[1]
    v0 = x._version[0]
    x[1, [0, 3]] = tinyml.tensor([1.0, 2.0])
    x[x == 0] = 7
    x[2] = tinyml.arange(4)  # int64 value into a float32 tensor: converted
    x[0, :2] = tinyml.tensor([[9.0]])
    assert x._version[0] == v0 + 4
    assert x.tolist() == [[9, 9, 7, 7], [1, 7, 7, 2], [0, 1, 2, 3]]
    assert base_view.tolist() == [1, 7, 7, 2]


def test_setitem_leaf_and_saved_tensor_errors():
    w = tinyml.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w[0] = 2.0
    with tinyml.no_grad():
        w[0] = 2.0  # allowed without grad, as in PyTorch
    assert w.tolist() == [2.0, 1.0, 1.0]
    x = tinyml.ones(3, requires_grad=True)
    y = x * 1
    z = y * y  # saves y
    with tinyml.no_grad():
        y[0] = 3.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.sum().backward()


def test_setitem_shape_error():
    x = tinyml.zeros(5, 6, 7)
    with pytest.raises(RuntimeError, match=r"value tensor of shape \[3\] cannot be broadcast to indexing "
                                           r"result of shape \[2, 6, 7\]"):
        x[[0, 1]] = tinyml.ones(3)


# ---- masked_select, take_along_dim, nonzero, one_hot ---------------------------------------------
def test_masked_select_take_along_dim(kernels):
    check_op([(3, 4)], lambda x: x.masked_select(x > 0), noncontiguous=True)
    check_op([(3, 4)], lambda x: x.masked_select(T(x, [True, False, False, True])))  # mask broadcasts
    check_op([(1, 4)], lambda x: x.masked_select(T(x, [[True], [False], [True]])))  # input broadcasts
    check_op([(3, 4)], lambda x: x.take_along_dim(T(x, [[0], [3], [3]]), 1))
    check_op([(3, 4)], lambda x: x.take_along_dim(T(x, [[2, 0, 2, 1]]), dim=0))
    check_op([(3, 4)], lambda x: x.take_along_dim(T(x, [11, 0, 0])))
    with pytest.raises(RuntimeError, match="expected BoolTensor for mask"):
        tinyml.zeros(2).masked_select(tinyml.ones(2))


def test_nonzero_one_hot():
    x = np.array([[0, 1.5, 0], [2, 0, -1]])
    for as_tuple in (False, True):
        got, want = tinyml.tensor(x).nonzero(as_tuple=as_tuple), torch.tensor(x).nonzero(as_tuple=as_tuple)
        got, want = (got, want) if as_tuple else ((got,), (want,))
        for a, b in zip(got, want):
            assert a.dtype is tinyml.int64 and a.tolist() == b.tolist()
    assert tinyml.nonzero(tinyml.tensor(0.0)).shape == (0, 0)
    ids = [[0, 3], [2, 2]]
    want = torch.nn.functional.one_hot(torch.tensor(ids)).tolist()
    assert tinyml.one_hot(tinyml.tensor(ids)).tolist() == want
    got = tinyml.one_hot(tinyml.tensor(ids), num_classes=6)
    assert got.dtype is tinyml.int64 and got.shape == (2, 2, 6) and got.sum().item() == 4
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        tinyml.one_hot(tinyml.tensor([3]), 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        tinyml.one_hot(tinyml.tensor([-1]))
    with pytest.raises(RuntimeError, match="LongTensor"):
        tinyml.one_hot(tinyml.tensor([1.0]))


def test_gradcheck_float64():
    def x64(*shape):
        return tinyml.tensor(np.random.default_rng(2).standard_normal(shape), requires_grad=True)

    idx = tinyml.tensor([2, 0, 2])
    gradcheck(lambda x: x[idx, 1:][:, [1, 1]], [x64(3, 4)])
    # src larger than index: zero gradient outside it
    gradcheck(lambda x, s: x.scatter_add(1, tinyml.tensor([[0, 0], [2, 0]]), s)
              .gather(0, tinyml.tensor([[1, 0]])), [x64(2, 3), x64(2, 3)])
    gradcheck(lambda x, s: x.scatter(0, tinyml.tensor([[1, 0, 1]]), s), [x64(2, 3), x64(2, 4)])

    def put(x, v):
        y = x * 1
        y[idx[:2], 1] = v
        return y

    gradcheck(put, [x64(3, 4), x64(2)])


# -- every backend of the family ------------------------------------------------------------------
def _lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def _idx(x, v):
    return _lib(x).tensor(v, device=x.device)


def test_advanced_index_placements(backend_device):
    check_op([(3, 4, 5)], lambda x: x[_idx(x, [0, 2, 2, -1])], device=backend_device)
    check_op([(3, 4, 5)], lambda x: x[:, _idx(x, [[0, 3], [1, 1]])], device=backend_device,
             noncontiguous=True)
    check_op([(3, 4, 5)], lambda x: x[_idx(x, [0, 2]), :, _idx(x, [1, 4])], device=backend_device)
    check_op([(3, 4, 5)], lambda x: x[1:, _idx(x, [0, 2]), _idx(x, [1, 4])], device=backend_device)


def test_masks_and_nonzero(backend_device):
    check_op([(3, 4)], lambda x: x[x > 0], device=backend_device)
    check_op([(3, 4)], lambda x: _lib(x).nonzero(x > 0), device=backend_device, grad=False)
    check_op([(40, 30)], lambda x: _lib(x).nonzero(x > 1.0), device=backend_device, grad=False)  # two blocks


def test_setitem_on_every_backend(backend_device):
    def put(x):
        y = x * 1
        y[_idx(x, [0, 2])] = 7.0
        y[1, _idx(x, [1, 3])] = x[0, :2]
        return y

    check_op([(3, 4)], put, device=backend_device)


def test_out_of_range_index_raises(backend_device):
    x = tinyml.zeros(3, device=backend_device)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x[tinyml.tensor([5], device=backend_device)]


@pytest.mark.parametrize("index", [(1, 0, 0), (0, 1), (1, 2, slice(1, 3)), (Ellipsis, 2)])
def test_setitem_without_advanced_index_on_every_backend(backend_device, index):
    """x[1, 0, 0] = v has no advanced part: the kernel gets the view and an empty index list."""
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = tinyml.tensor(data).to(backend_device)
    want = data.copy()
    x[index] = 5.0
    want[index] = 5.0
    np.testing.assert_array_equal(x.cpu().numpy(), want)
    value = np.full(want[index].shape, -1.0, np.float32)
    x[index] = tinyml.tensor(value).to(backend_device)
    want[index] = value
    np.testing.assert_array_equal(x.cpu().numpy(), want)
