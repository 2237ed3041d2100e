"""The PyTorch surface a first-day user reaches for: tinyml.Size (Tensor.shape / size()), the
Tensor.new_* factories (dtype and device inherited), tinyml.finfo / tinyml.iinfo, against torch."""
import pickle

import numpy as np
import pytest
import torch

import tinyml


def test_shape_is_a_size_like_torch():
    x, t = tinyml.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert isinstance(x.shape, tinyml.Size) and isinstance(x.shape, tuple)
    assert isinstance(x.size(), tinyml.Size) and x.size(-1) == 4 and type(x.size(1)) is int
    assert repr(x.shape) == "tinyml.Size([2, 3, 4])" == repr(t.shape).replace("torch", "tinyml")
    assert str(x.shape) == f"{x.shape}" == "(2, 3, 4)"  # error messages keep naming shapes as tuples
    assert x.shape == (2, 3, 4) == tuple(t.shape) and x.shape == t.shape
    assert x.shape.numel() == t.shape.numel() == 24 and tinyml.zeros(()).shape.numel() == 1
    assert isinstance(x.shape[1:], tinyml.Size) and x.shape[1:] == (3, 4) and x.shape[-1] == 4
    assert isinstance(x.shape + (5,), tinyml.Size) and isinstance((1,) + x.shape, tinyml.Size)
    assert (1,) + x.shape == (1, 2, 3, 4)
    assert tinyml.zeros(x.shape).shape == x.shape and tinyml.ones(*x.shape[:2]).shape == (2, 3)
    assert x.reshape(x.shape[0], -1).shape == (2, 12) and x.new_zeros(x.shape).shape == x.shape
    assert np.zeros(x.shape).shape == (2, 3, 4)
    assert pickle.loads(pickle.dumps(x.shape)) == x.shape
    assert type(pickle.loads(pickle.dumps(x.shape))) is tinyml.Size
    assert tinyml.Size([2, np.int64(3)]) == (2, 3) and hash(tinyml.Size([1])) == hash((1,))
    with pytest.raises(TypeError, match="iterable of 'int'.*'str'"):
        tinyml.Size(["a"])


@pytest.mark.parametrize("dtype", ["float64", "int32", "float16"])
def test_new_factories_inherit_dtype_and_device(dtype):
    x, t = tinyml.zeros(2, dtype=getattr(tinyml, dtype)), torch.zeros(2, dtype=getattr(torch, dtype))
    for name, args in [("new_zeros", ((2, 3),)), ("new_ones", (3,)), ("new_full", ((2,), 7)),
                       ("new_empty", ((1, 2),)), ("new_tensor", ([1, 2, 3],))]:
        ours, theirs = getattr(x, name)(*args), getattr(t, name)(*args)
        assert tuple(ours.shape) == tuple(theirs.shape), name
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", ""), name
        assert ours.device == x.device and not ours.requires_grad
        if name != "new_empty":
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert x.new_zeros(2, dtype=tinyml.int64).dtype is tinyml.int64
    if x.dtype.is_floating_point:
        assert x.new_ones((2,), requires_grad=True).requires_grad


@pytest.mark.parametrize("name", ["float32", "float64", "float16", "bfloat16"])
def test_finfo_matches_torch(name):
    ours, theirs = tinyml.finfo(getattr(tinyml, name)), torch.finfo(getattr(torch, name))
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(ours, field) == getattr(theirs, field), field
        assert type(getattr(ours, field)) is type(getattr(theirs, field)), field
    assert repr(ours) == repr(theirs)
    assert isinstance(ours, tinyml.finfo)


def test_finfo_default_is_the_default_dtype():
    assert tinyml.finfo().dtype == "float32"
    tinyml.set_default_dtype(tinyml.float64)
    try:
        assert tinyml.finfo().eps == torch.finfo(torch.float64).eps
    finally:
        tinyml.set_default_dtype(tinyml.float32)


@pytest.mark.parametrize("name", ["int64", "int32", "int16", "int8", "uint8"])
def test_iinfo_matches_torch(name):
    ours, theirs = tinyml.iinfo(getattr(tinyml, name)), torch.iinfo(getattr(torch, name))
    for field in ("bits", "max", "min", "dtype"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert repr(ours) == repr(theirs)


def test_info_errors_name_the_dtype():
    with pytest.raises(TypeError, match="requires a floating point input type, got tinyml.int32"):
        tinyml.finfo(tinyml.int32)
    with pytest.raises(TypeError, match="requires an integer input type, got tinyml.float32"):
        tinyml.iinfo(tinyml.float32)
    with pytest.raises(TypeError, match="tinyml.bool is not supported by tinyml.iinfo"):
        tinyml.iinfo(tinyml.bool)


def test_small_first_day_functions_match_torch():
    """count_nonzero, inverse, is_floating_point, Tensor.clamp_min/clamp_max/type_as, against torch."""
    import torch

    x = np.array([[0.0, 1.5, np.nan], [-2.0, 0.0, 0.0]], np.float32)
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    for dim in (None, 0, 1, (0, 1)):
        ours = tinyml.count_nonzero(tinyml.tensor(x), dim=dim)
        theirs = torch.count_nonzero(torch.tensor(x), dim=dim)
        assert ours.dtype == tinyml.int64 and ours.numpy().tolist() == theirs.numpy().tolist()
    np.testing.assert_allclose(tinyml.inverse(tinyml.tensor(a)).numpy(),
                               torch.inverse(torch.tensor(a)).numpy())
    np.testing.assert_allclose(tinyml.tensor(a).inverse().numpy(), np.linalg.inv(a))
    assert tinyml.is_floating_point(tinyml.tensor(a)) and not tinyml.is_floating_point(tinyml.tensor([1]))
    t, tt = tinyml.tensor(x), torch.tensor(x)
    np.testing.assert_array_equal(t.clamp_min(0.5).numpy(), tt.clamp_min(0.5).numpy())
    np.testing.assert_array_equal(t.clamp_max(-1.0).numpy(), tt.clamp_max(-1.0).numpy())
    assert t.type_as(tinyml.tensor(a)).dtype == tinyml.float64
