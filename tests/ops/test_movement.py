"""Movement ops against PyTorch: views (ops/movement.py), slicing views (ops/slicing.py) and copies
(ops/movement_copy.py), sharing storage or not, their gradients and errors; on reference and cpu
kernels, and on every backend of these families (backend_device: the numpy reference, the cpu
device's kernels, the Triton kernels)."""
import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()


def lib(x):
    """The library of tensor x (tinyml or torch), so one lambda runs on both."""
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def F(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch.nn.functional


# ---- views -------------------------------------------------------------------------------------
@pytest.mark.parametrize("noncontiguous", [False, True])
def test_narrow_select_unbind(kernels, noncontiguous):
    check_op([(4, 5)], lambda x: x.narrow(1, 1, 3), noncontiguous=noncontiguous)
    check_op([(4, 5)], lambda x: x.narrow(0, -3, 2), noncontiguous=noncontiguous)
    check_op([(4, 5)], lambda x: lib(x).select(x, 1, -1), noncontiguous=noncontiguous)
    check_op([(3, 4)], lambda x: x.unbind(1), noncontiguous=noncontiguous)
    check_op([(3, 4)], lambda x: x.unbind(0)[1] * 2)  # unused pieces get zero gradient


def test_split_chunk(kernels):
    check_op([(7, 3)], lambda x: x.split(3))
    check_op([(3, 7)], lambda x: x.split([2, 0, 5], dim=-1), noncontiguous=True)
    check_op([(7, 3)], lambda x: x.chunk(3))
    check_op([(6, 5)], lambda x: x.chunk(4, 1)[1])
    check_op([(5,)], lambda x: x.chunk(8))


def test_chunk_sizes_match_torch():
    for n in (0, 1, 5, 6, 7):
        for c in (1, 2, 3, 8):
            got = [t.shape for t in tinyml.zeros(n).chunk(c)]
            assert got == [tuple(t.shape) for t in torch.zeros(n).chunk(c)], (n, c)


@pytest.mark.parametrize("offset,d1,d2", [(0, 0, 1), (1, 0, 1), (-2, 1, 0), (1, -1, 0)])
def test_diagonal(kernels, offset, d1, d2):
    check_op([(4, 5, 3)], lambda x: x.diagonal(offset, d1, d2), noncontiguous=True)


def test_movedim_unflatten_broadcast(kernels):
    check_op([(2, 3, 4)], lambda x: x.movedim(0, -1))
    check_op([(2, 3, 4, 5)], lambda x: x.movedim((0, 1), (3, 0)))
    check_op([(2, 12)], lambda x: x.unflatten(1, (3, -1)))
    check_op([(3, 1)], lambda x: lib(x).broadcast_to(x, (2, 3, 4)))
    check_op([(3, 1), (4,), ()], lambda *xs: lib(xs[0]).broadcast_tensors(*xs))


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(kernels, indexing):
    check_op([(3,), (4,), (2,)], lambda *xs: lib(xs[0]).meshgrid(*xs, indexing=indexing))
    check_op([(3,), (4,)], lambda *xs: lib(xs[0]).meshgrid(xs[0], xs[1], indexing=indexing))


def test_views_share_storage():
    base = tinyml.arange(20.0).reshape(4, 5)
    views = [base.narrow(1, 1, 2), base.select(0, 2), base.diagonal(1), base.split(2)[1],
             base.unbind(1)[3], base.chunk(2, 1)[0], base.movedim(0, 1), base.unflatten(1, (5, 1)),
             base[1:3, ::2], base[None, 2]]
    for v in views:
        assert v._version is base._version and (v._base is base or v._base is base._base)
    want = torch.arange(20.0).reshape(4, 5)
    with tinyml.no_grad():
        for v, tv in zip(views, [want.narrow(1, 1, 2), want.select(0, 2), want.diagonal(1), want.split(2)[1],
                                 want.unbind(1)[3], want.chunk(2, 1)[0], want.movedim(0, 1),
                                 want.unflatten(1, (5, 1)), want[1:3, ::2], want[None, 2]]):
            v.mul_(2)
            tv.mul_(2)
    np.testing.assert_array_equal(base.numpy(), want.numpy())


def test_copies_do_not_share_storage():
    x = tinyml.arange(6.0).reshape(2, 3)
    for y in (x.flip(0), x.roll(1, 1), x.repeat(1, 1), x.tril(), tinyml.cat([x]), tinyml.pad(x, (0, 0))):
        y.zero_()
    np.testing.assert_array_equal(x.numpy(), np.arange(6.0).reshape(2, 3))


# ---- copies ------------------------------------------------------------------------------------
def test_cat_stack(kernels):
    check_op([(2, 3), (4, 3), (1, 3)], lambda a, b, c: lib(a).cat([a, b, c]))
    check_op([(2, 3), (2, 1)], lambda a, b: lib(a).cat((a, b), dim=-1), noncontiguous=True)
    check_op([(2, 3), (0,)], lambda a, b: lib(a).cat([a, b.detach()]))  # legacy empty 1-D is skipped
    check_op([(2, 3), (2, 3), (2, 3)], lambda a, b, c: lib(a).stack([a, b, c], 1))
    check_op([(), ()], lambda a, b: lib(a).stack([a, b]))
    check_op([(2, 3), (2, 3)], lambda a, b: lib(a).stack([a, b], -1))


def test_cat_promotes_dtypes():
    out = tinyml.cat([tinyml.zeros(2, 3, dtype=tinyml.int64), tinyml.ones(1, 3)])
    assert out.dtype is tinyml.float32 and out.shape == (3, 3)


def test_cat_stack_errors():
    with pytest.raises(RuntimeError,
                       match=r"Sizes of tensors must match except in dimension 0.*\(2, 3\) and \(3, 4\)"):
        tinyml.cat([tinyml.zeros(2, 3), tinyml.zeros(3, 4)])
    with pytest.raises(RuntimeError, match=r"same number of dimensions: got 2 and 1"):
        tinyml.cat([tinyml.zeros(2, 3), tinyml.zeros(3)])
    with pytest.raises(RuntimeError, match=r"zero-dimensional"):
        tinyml.cat([tinyml.zeros(())])
    with pytest.raises(RuntimeError, match=r"equal size, but got \[2, 3\] at entry 0 and \[3\] at entry 1"):
        tinyml.stack([tinyml.zeros(2, 3), tinyml.zeros(3)])


def test_repeat(kernels):
    check_op([(2, 3)], lambda x: x.repeat(2, 3))
    check_op([(2, 3)], lambda x: x.repeat(2, 1, 3), noncontiguous=True)
    check_op([()], lambda x: x.repeat(4))
    check_op([(3,)], lambda x: x.repeat(0, 2))
    with pytest.raises(RuntimeError, match="can not be smaller"):
        tinyml.zeros(2, 3).repeat(2)


def test_repeat_interleave(kernels):
    check_op([(2, 3)], lambda x: x.repeat_interleave(2))
    check_op([(2, 3)], lambda x: x.repeat_interleave(3, dim=1), noncontiguous=True)
    check_op([(3, 2)], lambda x: x.repeat_interleave(lib(x).tensor([2, 0, 3]), dim=0))
    check_op([(3, 2)], lambda x: x.repeat_interleave(lib(x).tensor([2]), dim=-1))
    got = tinyml.repeat_interleave(tinyml.tensor([1, 0, 3]))
    assert got.tolist() == torch.repeat_interleave(torch.tensor([1, 0, 3])).tolist()
    with pytest.raises(RuntimeError, match=r"repeats.size\(0\) = 2 and input.size\(1\) = 3"):
        tinyml.zeros(2, 3).repeat_interleave(tinyml.tensor([1, 2]), dim=1)
    with pytest.raises(RuntimeError, match="can not be negative"):
        tinyml.zeros(2).repeat_interleave(-1)


def test_flip_roll(kernels):
    check_op([(3, 4, 2)], lambda x: x.flip(0, 2) if isinstance(x, torch.Tensor) else x.flip((0, 2)))
    check_op([(3, 4)], lambda x: lib(x).flip(x, [-1]), noncontiguous=True)
    check_op([(3, 4)], lambda x: x.roll(2))
    check_op([(3, 4)], lambda x: x.roll((1, -5), (0, 1)), noncontiguous=True)
    check_op([(3, 4)], lambda x: x.roll(-1, 1))
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times"):
        tinyml.zeros(2, 3).flip((0, 0))
    with pytest.raises(RuntimeError, match="shifts and dimensions must align"):
        tinyml.zeros(2, 3).roll((1, 2), (0,))


@pytest.mark.parametrize("diagonal", [0, 1, -2, 5])
def test_tril_triu(kernels, diagonal):
    check_op([(4, 5)], lambda x: x.tril(diagonal))
    check_op([(2, 5, 4)], lambda x: x.triu(diagonal), noncontiguous=True)


def test_tril_needs_2d():
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        tinyml.zeros(3).tril()


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_modes(kernels, mode):
    check_op([(2, 3, 5)], lambda x: F(x).pad(x, (2, 3), mode=mode))
    check_op([(1, 2, 4, 5)], lambda x: F(x).pad(x, (1, 2, 3, 1), mode=mode), noncontiguous=True)
    check_op([(1, 2, 3, 4, 3)], lambda x: F(x).pad(x, (1, 1, 0, 2, 2, 1), mode=mode))


def test_pad_constant(kernels):
    check_op([(2, 3)], lambda x: F(x).pad(x, (1, 2)))
    check_op([(2, 3, 4)], lambda x: F(x).pad(x, (1, 0, 2, 1, 0, 3), value=-1.5), noncontiguous=True)
    check_op([(2, 5)], lambda x: F(x).pad(x, (-1, 2, 1, -1), value=3.0))  # negative pads crop
    check_op([(4,)], lambda x: F(x).pad(x, (0, 0)))
    out = tinyml.pad(tinyml.tensor([[1, 2]]), (1, 1), value=7)
    assert out.dtype is tinyml.int64 and out.tolist() == [[7, 1, 2, 7]]


def test_pad_errors():
    x = tinyml.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"padding \(3, 3\) at dimension 1 of input \[2, 3\]"):
        tinyml.pad(x, (3, 3), mode="reflect")
    with pytest.raises(RuntimeError, match="divisible by 2"):
        tinyml.pad(x, (1, 1, 1))
    with pytest.raises(RuntimeError, match="wrapping around more than once"):
        tinyml.pad(x, (4, 4), mode="circular")
    with pytest.raises(NotImplementedError, match="Padding size 4 is not supported for 2D input"):
        tinyml.pad(x, (1, 1, 1, 1), mode="reflect")
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode foo"):
        tinyml.pad(x, (1, 1), mode="foo")


def test_view_errors():
    x = tinyml.zeros(4, 5)
    with pytest.raises(RuntimeError, match=r"start \(3\) \+ length \(3\) exceeds dimension size \(4\)"):
        x.narrow(0, 3, 3)
    with pytest.raises(IndexError, match=r"start out of range"):
        x.narrow(0, 5, 0)
    with pytest.raises(RuntimeError, match=r"split_sizes to sum exactly to 5.*split_sizes=\[2, 2\]"):
        x.split([2, 2], 1)
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0"):
        x.chunk(0)
    with pytest.raises(IndexError, match="index 5 out of range"):
        tinyml.select(x, 0, 5)
    with pytest.raises(RuntimeError, match="diagonal dimensions cannot be identical"):
        x.diagonal(0, 1, -1)
    with pytest.raises(RuntimeError, match=r"must match the existing size \(5\)"):
        tinyml.broadcast_to(x, (4, 3))
    with pytest.raises(RuntimeError, match=r"not broadcastable"):
        tinyml.broadcast_tensors(x, tinyml.zeros(3))
    with pytest.raises(RuntimeError, match=r"Expected 0D or 1D tensor"):
        tinyml.meshgrid(x, x)


def test_gradcheck_float64():
    def x64(*shape):
        return tinyml.tensor(np.random.default_rng(1).standard_normal(shape), requires_grad=True)

    gradcheck(lambda x: tinyml.pad(x, (2, 1), mode="reflect"), [x64(2, 4)])
    gradcheck(lambda x: x.repeat(2, 1, 2), [x64(2, 3)])
    gradcheck(lambda x: x.diagonal(-1), [x64(3, 4)])
    gradcheck(lambda a, b: tinyml.cat([a, b], 1).roll(1, 0), [x64(2, 3), x64(2, 2)])


# -- every backend of the families -----------------------------------------------------------------
def test_slices_and_diagonals(backend_device):
    check_op([(3, 4, 5)], lambda x: x[1:, ::2, 3], device=backend_device)
    check_op([(3, 4, 5)], lambda x: x[None, 2, 1:3], device=backend_device, noncontiguous=True)
    check_op([(3, 4, 5)], lambda x: x.diagonal(1, 0, 2), device=backend_device)
    check_op([(4, 4)], lambda x: x.diagonal(-1), device=backend_device)


def test_repeat_and_repeat_interleave(backend_device):
    check_op([(2, 3)], lambda x: x.repeat(2, 1, 3), device=backend_device)
    check_op([(2, 3)], lambda x: x.repeat_interleave(3, dim=1), device=backend_device, noncontiguous=True)
    check_op([(2, 3)], lambda x: x.repeat_interleave(2), device=backend_device)
    check_op([(3, 2)], lambda x: x.repeat_interleave(lib(x).tensor([1, 0, 3], device=x.device), dim=0),
             device=backend_device)


def test_cat_flip_roll(backend_device):
    check_op([(2, 3), (2, 4)], lambda a, b: lib(a).cat([a, b], 1), device=backend_device)
    check_op([(2, 3, 4)], lambda x: x.flip((0, 2)), device=backend_device, noncontiguous=True)
    check_op([(2, 3, 4)], lambda x: x.roll((1, -2), (0, 2)), device=backend_device)
    check_op([(2, 3, 4)], lambda x: x.roll(5), device=backend_device)


def test_tril_triu_pad(backend_device):
    check_op([(2, 3, 4)], lambda x: x.tril(), device=backend_device)
    check_op([(2, 3, 4)], lambda x: x.triu(1), device=backend_device, noncontiguous=True)
    check_op([(2, 1, 2, 3, 4)], lambda x: x.triu(-1), device=backend_device)
    check_op([(2, 3, 4)], lambda x: lib(x).nn.functional.pad(x, (1, 2, 0, 1), value=1.5),
             device=backend_device)
