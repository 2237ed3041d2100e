"""searchsorted, bucketize, unique, unique_consecutive, bincount, histc (ops/search.py) against
PyTorch on every backend of the family (backend_device: the numpy reference, the C++ kernels, the
Triton kernels). None of them is differentiable, so these are forward checks: exact equality
(indices and counts), and float sums within rounding for weighted bincount."""
import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture

import tinyml

backend_device = backend_device_fixture()
NAN, INF = float("nan"), float("inf")
RNG = np.random.default_rng(0)


def _eq(ours, theirs):
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _eq(a, b)
        return
    assert tuple(ours.shape) == tuple(theirs.shape), (ours.shape, theirs.shape)
    assert ours.dtype.name == str(theirs.dtype).replace("torch.", ""), (ours.dtype, theirs.dtype)
    np.testing.assert_array_equal(ours.cpu().numpy(), theirs.numpy())


def _t(a, device):
    return tinyml.tensor(a, device=device)


@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_matches_torch(backend_device, right):
    seq1 = np.sort(RNG.integers(-6, 6, 9))
    vals = RNG.integers(-8, 8, (3, 4))
    for dtype in ("int64", "int32", "float32", "float64"):
        s, v = seq1.astype(dtype), vals.astype(dtype)
        _eq(tinyml.searchsorted(_t(s, backend_device), _t(v, backend_device), right=right),
            torch.searchsorted(torch.tensor(s), torch.tensor(v), right=right))
    seq2 = np.sort(RNG.standard_normal((2, 3, 7)), -1).astype(np.float32)
    vals2 = RNG.standard_normal((2, 3, 5)).astype(np.float32)
    side = "right" if right else "left"
    _eq(tinyml.searchsorted(_t(seq2, backend_device), _t(vals2, backend_device), side=side),
        torch.searchsorted(torch.tensor(seq2), torch.tensor(vals2), side=side))
    # mixed dtypes promote; NaN values land past everything; a scalar value gives a 0-d result
    odd = np.array([2.5, NAN, -INF], np.float32)
    _eq(tinyml.searchsorted(_t(seq1, backend_device), _t(odd, backend_device), right=right),
        torch.searchsorted(torch.tensor(seq1), torch.tensor([2.5, NAN, -INF]), right=right))
    _eq(tinyml.searchsorted(_t(seq1, backend_device), 3, right=right),
        torch.searchsorted(torch.tensor(seq1), 3, right=right))


def test_searchsorted_sorter_out_int32_and_empty(backend_device):
    seq = RNG.standard_normal(8).astype(np.float32)
    sorter = np.argsort(seq)
    vals = RNG.standard_normal((2, 5)).astype(np.float32)
    _eq(tinyml.searchsorted(_t(seq, backend_device), _t(vals, backend_device),
                            sorter=_t(sorter, backend_device)),
        torch.searchsorted(torch.tensor(seq), torch.tensor(vals), sorter=torch.tensor(sorter)))
    _eq(tinyml.searchsorted(_t(np.sort(seq), backend_device), _t(vals, backend_device), out_int32=True),
        torch.searchsorted(torch.tensor(np.sort(seq)), torch.tensor(vals), out_int32=True))
    empty = np.zeros((0,), np.float32)
    _eq(tinyml.searchsorted(_t(np.sort(seq), backend_device), _t(empty, backend_device)),
        torch.searchsorted(torch.tensor(np.sort(seq)), torch.tensor(empty)))
    _eq(tinyml.searchsorted(_t(empty, backend_device), _t(vals, backend_device)),
        torch.searchsorted(torch.tensor(empty), torch.tensor(vals)))


def test_searchsorted_errors_name_the_values(backend_device):
    seq = tinyml.tensor([[1.0, 2.0, 3.0]], device=backend_device)
    with pytest.raises(RuntimeError, match=r"boundaries tensor \[1, 3\] and input value tensor \[2, 1\]"):
        tinyml.searchsorted(seq, tinyml.zeros(2, 1, device=backend_device))
    with pytest.raises(RuntimeError, match="side of left while right was True"):
        tinyml.searchsorted(seq[0], tinyml.zeros(1, device=backend_device), side="left", right=True)
    with pytest.raises(RuntimeError, match="'middle'"):
        tinyml.searchsorted(seq[0], tinyml.zeros(1, device=backend_device), side="middle")
    with pytest.raises(RuntimeError, match=r"sorter must be an int64 tensor .*\[3\], got .*int32 \[3\]"):
        tinyml.searchsorted(seq[0], tinyml.zeros(1, device=backend_device),
                            sorter=tinyml.tensor([0, 1, 2], dtype=tinyml.int32, device=backend_device))


@pytest.mark.parametrize("right", [False, True])
def test_bucketize_matches_torch(backend_device, right):
    bounds = np.array([1, 3, 5, 7, 9])
    x = np.array([[1, 5, 0], [3, 9, 10]])
    _eq(tinyml.bucketize(_t(x, backend_device), _t(bounds, backend_device), right=right),
        torch.bucketize(torch.tensor(x), torch.tensor(bounds), right=right))
    _eq(tinyml.bucketize(4, _t(bounds, backend_device), out_int32=True),
        torch.bucketize(4, torch.tensor(bounds), out_int32=True))
    with pytest.raises(RuntimeError, match=r"boundaries tensor must be 1 dimension, but got \[1, 5\]"):
        tinyml.bucketize(_t(x, backend_device), _t(bounds[None], backend_device))


@pytest.mark.parametrize("name", ["unique", "unique_consecutive"])
def test_unique_matches_torch(backend_device, name):
    ints = np.repeat(np.random.default_rng(5).integers(-3, 4, 9), 2).reshape(3, 6)  # runs of equal values
    floats = np.array([NAN, 1.0, NAN, 1.0, -0.0, 0.0, 2.0, 2.0], np.float32)
    for a in (ints, ints.astype(np.int32), floats, ints > 0, np.zeros((0, 3), np.int64), np.array(5)):
        for inverse, counts in ((False, False), (True, True), (False, True)):
            ours = getattr(tinyml, name)(_t(a, backend_device), return_inverse=inverse, return_counts=counts)
            theirs = getattr(torch, name)(torch.tensor(a), return_inverse=inverse, return_counts=counts)
            _eq(ours, theirs)
    if name == "unique":
        _eq(_t(ints, backend_device).unique(sorted=False), torch.tensor(ints).unique(sorted=False))


@pytest.mark.parametrize("name", ["unique", "unique_consecutive"])
def test_unique_along_dim_matches_torch(backend_device, name):
    a = np.array([[1, 2, 1, 1], [0, 5, 0, 0], [0, 5, 0, 0], [1, 2, 1, 1], [0, 1, 3, 3]])
    for dim in (0, 1, -1):
        ours = getattr(tinyml, name)(_t(a, backend_device), return_inverse=True, return_counts=True, dim=dim)
        _eq(ours, getattr(torch, name)(torch.tensor(a), return_inverse=True, return_counts=True, dim=dim))
    b = RNG.integers(0, 2, (3, 4, 2)).astype(np.float32)
    _eq(getattr(tinyml, name)(_t(b, backend_device), dim=1), getattr(torch, name)(torch.tensor(b), dim=1))


def test_bincount_matches_torch(backend_device):
    x = RNG.integers(0, 7, 50)
    _eq(_t(x, backend_device).bincount(), torch.tensor(x).bincount())
    _eq(tinyml.bincount(_t(x, backend_device), minlength=12), torch.bincount(torch.tensor(x), minlength=12))
    x32 = x.astype(np.int32)
    _eq(tinyml.bincount(_t(x32, backend_device)), torch.bincount(torch.tensor(x32)))
    for w in (RNG.random(50).astype(np.float32), RNG.random(50), RNG.integers(0, 5, 50)):
        ours = tinyml.bincount(_t(x, backend_device), weights=_t(w, backend_device))
        theirs = torch.bincount(torch.tensor(x), weights=torch.tensor(w))
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_allclose(ours.cpu().numpy(), theirs.numpy(), rtol=1e-6)
    empty = np.zeros(0, np.int64)
    _eq(tinyml.bincount(_t(empty, backend_device)), torch.bincount(torch.tensor(empty)))
    _eq(tinyml.bincount(_t(empty, backend_device), minlength=3),
        torch.bincount(torch.tensor(empty), minlength=3))


def test_bincount_refuses_bad_input(backend_device):
    with pytest.raises(RuntimeError, match="non-negative integral inputs, got a value of -1"):
        tinyml.bincount(tinyml.tensor([-1, 2], device=backend_device))
    with pytest.raises(RuntimeError, match=r"integral inputs, got .*int64 of shape \[1, 2\]"):
        tinyml.bincount(tinyml.tensor([[1, 2]], device=backend_device))
    with pytest.raises(RuntimeError, match="got .*float32 of shape"):
        tinyml.bincount(tinyml.tensor([1.0, 2.0], device=backend_device))
    with pytest.raises(RuntimeError, match=r"same length as input \(2\), got \[3\]"):
        tinyml.bincount(tinyml.tensor([1, 2], device=backend_device), tinyml.ones(3, device=backend_device))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_histc_matches_torch(backend_device, dtype):
    x = (RNG.standard_normal((20, 30)) * 2).astype(dtype)
    for bins, lo, hi in ((10, -1.0, 1.0), (7, 0, 0), (100, -3.5, 2.25), (1, -1, 1)):
        _eq(tinyml.histc(_t(x, backend_device), bins, lo, hi), torch.histc(torch.tensor(x), bins, lo, hi))
    edges = np.array([0.0, 3.0, 3.0000001, -0.0, 1.5, -1e-9, NAN], dtype)  # on the edges; NaN skipped
    _eq(tinyml.histc(_t(edges, backend_device), 3, 0, 3), torch.histc(torch.tensor(edges), 3, 0, 3))
    same = np.ones(5, dtype)
    _eq(_t(same, backend_device).histc(4), torch.tensor(same).histc(4))
    empty = np.zeros(0, dtype)
    _eq(tinyml.histc(_t(empty, backend_device), 3), torch.histc(torch.tensor(empty), 3))


def test_histc_refuses_bad_input(backend_device):
    x = tinyml.tensor([1.0, NAN], device=backend_device)
    with pytest.raises(RuntimeError, match=r"range of \[nan, nan\] is not finite"):
        tinyml.histc(x, 4)
    with pytest.raises(RuntimeError, match=r"max must be larger than min \(got min=3, max=1\)"):
        tinyml.histc(x, 4, 3, 1)
    with pytest.raises(RuntimeError, match="bins must be > 0, but got 0"):
        tinyml.histc(x, 0)
    with pytest.raises(NotImplementedError, match="got .*int64"):
        tinyml.histc(tinyml.tensor([1, 2], device=backend_device))


def test_cpu_bindings_check_sizes_before_touching_memory():
    from tinyml.backends.cpu import _C

    if _C is None:
        pytest.skip("tinyml._C is not built")
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"seq has 2 rows but values have 3"):
        _C.searchsorted_rows(x, np.zeros((3, 1), np.float32), False)
    with pytest.raises(TypeError, match="share a dtype"):
        _C.searchsorted_rows(x, np.zeros((2, 1), np.float64), False)
    with pytest.raises(IndexError, match="value 5 at position 1 is out of range for 4 bins"):
        _C.bincount(np.array([0, 5]), None, 4)
    with pytest.raises(ValueError, match=r"weights of shape \(3,\) do not match input of shape \(2,\)"):
        _C.bincount(np.array([0, 1]), np.ones(3), 4)
    with pytest.raises(ValueError, match=r"expected low < high, got \[1.0+, 1.0+\]"):
        _C.histc(x, 3, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"expected a 2-D \(rows, n\) array, got shape \(3,\)"):
        _C.sort_rows(np.zeros(3, np.float32), False)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.sort_rows(x.T, False)
    with pytest.raises(ValueError, match="k=4 is out of range for rows of 3 elements"):
        _C.topk_rows(x, 4, True)
    with pytest.raises(ValueError, match="k=0 is out of range"):
        _C.kthvalue_rows(x, 0)
    with pytest.raises(TypeError, match="expected float32, float64, int64"):
        _C.sort_rows(x.astype(np.float16), False)
