"""sort, argsort, msort, topk, kthvalue, median, nanmedian (ops/sort.py) against PyTorch, forward and
backward, on every backend of the family (backend_device: the numpy reference, the C++ kernels,
the Triton kernels). Random floats have distinct values, so indices match PyTorch's exactly; with
ties, PyTorch's stable sort fixes the indices, and for topk/kthvalue/median (whose tie order
PyTorch leaves open) the values must match and the indices must point at them."""
import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()
NAN, INF = float("nan"), float("inf")


def _both(arr, device, dtype=None):
    return tinyml.tensor(arr, dtype=dtype, device=device), torch.tensor(arr)


def _same(ours, theirs):
    """Named-tuple results equal PyTorch's: values (NaN = NaN, -0.0 = 0.0 by value) and indices."""
    np.testing.assert_array_equal(ours[0].cpu().numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(ours[1].cpu().numpy(), theirs[1].numpy())


def _points_at(x, result, dim):
    """indices select values from x along dim (for results whose tie order is open)."""
    values, indices = (t.cpu().numpy() for t in result)
    picked = np.take_along_axis(x, np.expand_dims(indices, dim) if values.ndim < x.ndim else indices, dim)
    np.testing.assert_array_equal(picked.reshape(values.shape), values)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch(backend_device, dim, descending):
    check_op([(3, 4, 5)], lambda x: x.sort(dim, descending), device=backend_device)
    check_op([(4, 6)], lambda x: x.sort(dim, descending=descending), noncontiguous=True,
             device=backend_device)


def test_sort_long_rows_and_argsort_msort(backend_device):
    check_op([(2, 1000)], lambda x: x.sort(-1), device=backend_device)  # pads to 1024 on triton
    check_op([(5, 3)], lambda x: x.argsort(0, descending=True), grad=False, device=backend_device)
    check_op([(5, 3)], lambda x: x.msort(), lambda x: torch.msort(x), device=backend_device)
    check_op([(7,)], lambda x: x.sort(), device=backend_device)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_sort_family_other_float_dtypes(backend_device, dtype):
    # distinct values: random 16-bit floats can tie, so the inputs are a shuffled grid
    grid = np.random.default_rng(6).permutation(np.arange(-12, 12) / 8).reshape(4, 6)
    check_op([], lambda x: x.sort(1, descending=True), inputs=[grid], dtype=dtype, device=backend_device)
    check_op([], lambda x: x.topk(2, 0), inputs=[grid], dtype=dtype, device=backend_device)
    check_op([], lambda x: x.median(1), inputs=[grid], dtype=dtype, device=backend_device)


@pytest.mark.parametrize("descending", [False, True])
def test_sort_ties_are_stable(backend_device, descending):
    ints = np.random.default_rng(1).integers(-2, 3, (4, 9))
    for dtype in ("int64", "int32", "float32", "float64"):
        x = ints.astype(dtype)
        ours = tinyml.tensor(x, device=backend_device).sort(1, descending=descending)
        _same(ours, torch.tensor(x).sort(dim=1, descending=descending, stable=True))
    b = ints > 0
    _same(tinyml.tensor(b, device=backend_device).sort(1, descending),
          torch.tensor(b).sort(dim=1, descending=descending, stable=True))
    u8 = (ints + 2).astype(np.uint8)
    _same(tinyml.tensor(u8, device=backend_device).sort(0, descending),
          torch.tensor(u8).sort(dim=0, descending=descending, stable=True))


@pytest.mark.parametrize("descending", [False, True])
def test_sort_nan_inf_and_signed_zero(backend_device, descending):
    x = np.array([[1.0, NAN, -INF, 0.0, -0.0, INF, NAN, -1.0, 0.0],
                  [-0.0, 0.0, -0.0, 2.0, NAN, 2.0, -INF, 1, 1]], np.float32)
    for dtype in ("float32", "float64", "float16"):
        a = x.astype(dtype)
        ours = tinyml.tensor(a, device=backend_device).sort(-1, descending=descending)
        theirs = torch.tensor(a).sort(dim=-1, descending=descending, stable=True)
        _same(ours, theirs)
        # -0.0 keeps its sign: values are read back from the input
        signs = np.signbit(ours.values.cpu().numpy())
        np.testing.assert_array_equal(signs, np.signbit(theirs.values.numpy()))


def test_sort_empty_and_zero_dim(backend_device):
    for shape, dim in (((0, 3), 1), ((3, 0), 1), ((0,), 0), ((2, 0, 3), 1)):
        x = np.zeros(shape, np.float32)
        ours, theirs = tinyml.tensor(x, device=backend_device).sort(dim), torch.tensor(x).sort(dim)
        assert ours.values.shape == tuple(theirs.values.shape) and ours.indices.dtype is tinyml.int64
        assert tinyml.tensor(x, device=backend_device).topk(0, dim).values.shape == \
            tuple(torch.tensor(x).topk(0, dim).values.shape)
    s = tinyml.tensor(3.5, device=backend_device)
    _same(s.sort(), torch.tensor(3.5).sort())
    _same(s.topk(1), torch.tensor(3.5).topk(1))
    _same(s.kthvalue(1), torch.tensor(3.5).kthvalue(1))
    _same(s.median(0), torch.tensor(3.5).median(0))


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_topk_matches_torch(backend_device, largest, dim):
    for k in (0, 1, 3):
        check_op([(3, 4, 5)], lambda x, k=k: x.topk(k, dim, largest), device=backend_device)
    check_op([(4, 6)], lambda x: x.topk(4, dim=-1, largest=largest, sorted=True), noncontiguous=True,
             device=backend_device)


def test_topk_whole_row_ties_nan_and_ints(backend_device):
    check_op([(3, 6)], lambda x: x.topk(6), device=backend_device)  # k = n
    x = np.array([[2.0, NAN, 2.0, 2.0, 1.0, -INF], [1.0, 2.0, 2.0, 2.0, 3.0, 3.0]], np.float32)
    for largest in (True, False):
        for k in (1, 2, 4, 6):
            ours = tinyml.tensor(x, device=backend_device).topk(k, largest=largest)
            want = torch.tensor(x).topk(k, largest=largest).values.numpy()
            np.testing.assert_array_equal(ours.values.cpu().numpy(), want)
            _points_at(x, ours, 1)
    ints = np.random.default_rng(2).integers(-50, 50, (3, 40))
    for dtype in ("int64", "int32"):
        a = ints.astype(dtype)
        ours = tinyml.tensor(a, device=backend_device).topk(5)
        np.testing.assert_array_equal(ours.values.cpu().numpy(), torch.tensor(a).topk(5).values.numpy())
        _points_at(a, ours, 1)


def test_topk_and_kthvalue_refuse_k_out_of_range(backend_device):
    x = tinyml.zeros(2, 3, device=backend_device)
    with pytest.raises(RuntimeError, match=r"k=4 .*dimension -1 of size 3"):
        x.topk(4)
    with pytest.raises(RuntimeError, match=r"k=-1 .*size 3"):
        x.topk(-1)
    with pytest.raises(RuntimeError, match=r"k=0 .*size 2"):
        x.kthvalue(0, 0)
    with pytest.raises(RuntimeError, match=r"k=3 .*size 2"):
        x.kthvalue(3, 0)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.sort(2)
    with pytest.raises(IndexError, match="non-zero size"):
        tinyml.zeros(2, 0, device=backend_device).median(1)
    with pytest.raises(TypeError, match="must be a Tensor"):
        tinyml.sort([3, 1, 2])


@pytest.mark.parametrize("keepdim", [False, True])
def test_kthvalue_matches_torch(backend_device, keepdim):
    for dim, k in ((0, 1), (1, 2), (-1, 5)):
        check_op([(3, 4, 5)], lambda x, d=dim, k=k: x.kthvalue(k, d, keepdim), device=backend_device)
    check_op([(5, 4)], lambda x: x.kthvalue(3, 0, keepdim), noncontiguous=True, device=backend_device)
    x = np.array([[2.0, 1.0, 2.0, 2.0, 1.0], [NAN, 0.0, 1.0, -INF, NAN]], np.float32)
    for k in range(1, 6):
        ours = tinyml.tensor(x, device=backend_device).kthvalue(k, 1)
        want = torch.tensor(x).kthvalue(k, 1).values.numpy()
        np.testing.assert_array_equal(ours.values.cpu().numpy(), want)
        _points_at(x, ours, 1)


@pytest.mark.parametrize("name", ["median", "nanmedian"])
def test_median_along_dim_matches_torch(backend_device, name):
    for dim, keepdim in ((0, False), (1, True), (-1, False)):
        check_op([(4, 5, 6)], lambda x, d=dim, k=keepdim: getattr(x, name)(d, k), device=backend_device)
    check_op([(5, 3)], lambda x: getattr(x, name)(0, True), noncontiguous=True, device=backend_device)


@pytest.mark.parametrize("name", ["median", "nanmedian"])
def test_median_nan_rows_as_torch(backend_device, name):
    # NaN rows (median: NaN at the first NaN; nanmedian: the lower median of the rest, NaN when all NaN)
    x = np.array([[1.0, NAN, 3.0, NAN, 0.0], [NAN, NAN, NAN, NAN, NAN], [5.0, 4.0, 3.0, 2.0, 1.0],
                  [INF, -INF, NAN, 0.0, -0.0]], np.float32)
    for dtype in ("float32", "float64"):
        a = x.astype(dtype)
        ours = getattr(tinyml.tensor(a, device=backend_device), name)(1)
        theirs = getattr(torch.tensor(a), name)(1)
        np.testing.assert_array_equal(ours.values.cpu().numpy(), theirs.values.numpy())
        # which NaN an all-NaN row's nanmedian points at is up to PyTorch's nth_element: row 1 not compared
        rows = [0, 2, 3] if name == "nanmedian" else [0, 1, 2, 3]
        np.testing.assert_array_equal(ours.indices.cpu().numpy()[rows], theirs.indices.numpy()[rows])
        ours = getattr(tinyml.tensor(a, device=backend_device), name)()
        np.testing.assert_array_equal(ours.cpu().numpy(), getattr(torch.tensor(a), name)().numpy())
    ties = np.array([[2.0, 2.0, 1.0, 2.0, 5.0], [3.0, 3.0, 3.0, 3.0, 3.0]], np.float32)
    ours = getattr(tinyml.tensor(ties, device=backend_device), name)(1)
    np.testing.assert_array_equal(ours.values.cpu().numpy(), getattr(torch.tensor(ties), name)(1).values)
    _points_at(ties, ours, 1)


def test_median_of_ints_and_all_elements(backend_device):
    ints = np.random.default_rng(3).integers(-9, 9, (4, 7))
    for dtype in ("int64", "int32"):
        a = ints.astype(dtype)
        ours = tinyml.tensor(a, device=backend_device).median(1)
        np.testing.assert_array_equal(ours.values.cpu().numpy(), torch.tensor(a).median(1).values.numpy())
        _points_at(a, ours, 1)
        assert tinyml.tensor(a, device=backend_device).median().item() == torch.tensor(a).median().item()
    # median() of all elements: the gradient is shared among the elements equal to it, as torch does
    check_op([(4, 5)], lambda x: (x * 4).round().median(), device=backend_device)
    check_op([(3, 5)], lambda x: x.nanmedian(), device=backend_device)
    empty = tinyml.zeros(0, device=backend_device).median()
    assert empty.shape == () and np.isnan(empty.item())


def test_sort_family_gradcheck_float64():
    rng = np.random.default_rng(4)
    x = tinyml.tensor(rng.standard_normal((3, 5)), dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda t: t.sort(1, descending=True).values, [x])
    assert gradcheck(lambda t: t.topk(2, 0).values, [x])
    assert gradcheck(lambda t: t.kthvalue(3, 1).values, [x])
    assert gradcheck(lambda t: t.median(0, keepdim=True).values, [x])
    assert gradcheck(lambda t: t.nanmedian(), [x])


def test_sort_second_derivative_flows_through_the_indices():
    x = tinyml.tensor([[3.0, 1.0, 2.0]], requires_grad=True)
    values = x.sort(1).values
    (g,) = tinyml.autograd.grad((values * values * tinyml.tensor([[1.0, 2.0, 3.0]])).sum(), [x],
                                create_graph=True)
    g.sum().backward()
    xt = torch.tensor([[3.0, 1.0, 2.0]], requires_grad=True)
    vt = xt.sort(1).values
    (gt,) = torch.autograd.grad((vt * vt * torch.tensor([[1.0, 2.0, 3.0]])).sum(), [xt], create_graph=True)
    gt.sum().backward()
    np.testing.assert_allclose(g.detach().numpy(), gt.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())


def test_results_are_named_tuples():
    x = tinyml.tensor([[3.0, 1.0, 2.0]])
    values, indices = x.sort()
    assert values is not None and x.sort().indices.tolist() == indices.tolist() == [[1, 2, 0]]
    assert type(x.topk(1)).__name__ == "topk" and x.topk(1).values.tolist() == [[3.0]]
    assert x.kthvalue(2).indices.tolist() == [2] and tuple(x.median(1)) [0].tolist() == [2.0]
    assert tinyml.argsort(x, descending=True).tolist() == [[0, 2, 1]]
