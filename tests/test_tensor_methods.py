"""Tensor's op methods, bound by tinyml/tensor_methods.py: every one present after `import tinyml`,
`to` parsed as PyTorch parses it (one parser for Tensor.to and Module.to), the new_* factories
against PyTorch."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml import tensor_methods
from tinyml._operators import TensorOperators
from tinyml.ops import creation
from tinyml.tensor import Tensor, parse_to_args


def test_every_method_is_bound_to_its_op():
    for name in tensor_methods.METHOD_OPS:
        assert getattr(Tensor, name) is getattr(tinyml.ops, name), name
    for name in tensor_methods.NEW_FACTORIES:
        assert getattr(Tensor, name) is getattr(creation, name), name
    assert Tensor.__mul__ is TensorOperators.__mul__ and Tensor.__getitem__ is TensorOperators.__getitem__
    assert Tensor.__init__ is tensor_methods._init_from_data and Tensor.to is tensor_methods.to


def test_operators_keep_identity_hash():
    # binding __eq__ after the class exists must not drop the identity hash backward relies on
    x = tinyml.ones(2)
    assert hash(x) == object.__hash__(x) and {x: 1}[x] == 1


@pytest.mark.parametrize("args,kwargs,want", [
    (("cpu",), {}, ("cpu", None, False)),
    ((tinyml.float64,), {}, (None, tinyml.float64, False)),
    (("cpu", tinyml.float16), {}, ("cpu", tinyml.float16, False)),
    ((float,), {}, (None, tinyml.float32, False)),
    ((int,), {}, (None, tinyml.int64, False)),
    ((bool,), {}, (None, tinyml.bool, False)),
    ((tinyml.float64, False, True), {}, (None, tinyml.float64, True)),
    (("cpu", tinyml.float64, False, True), {}, ("cpu", tinyml.float64, True)),
    ((), {"device": "cpu", "dtype": "float64", "non_blocking": True, "copy": True},
     ("cpu", tinyml.float64, True)),
    ((tinyml.zeros(1, dtype=tinyml.int32),), {}, ("cpu", tinyml.int32, False)),
])
def test_parse_to_args_takes_pytorchs_forms(args, kwargs, want):
    dev, dt, copy = parse_to_args(args, dict(kwargs))
    assert (None if dev is None else str(dev), dt, copy) == want


def test_parse_to_args_refuses_what_pytorch_refuses():
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['memory_format'\]"):
        parse_to_args((), {"memory_format": None})
    with pytest.raises(TypeError, match="at most two flags"):
        parse_to_args((tinyml.float32, True, True, True), {})
    with pytest.raises(TypeError, match="does not accept copy argument"):
        parse_to_args((), {"copy": False}, accepts_copy=False)
    with pytest.raises(TypeError, match="does not accept copy argument"):
        parse_to_args((tinyml.float32, False, True), {}, accepts_copy=False)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        parse_to_args(("tpu",), {})


def test_tensor_to_copy_flag_and_no_op_like_torch():
    x = tinyml.tensor([1.5, -2.0])
    assert x.to("cpu") is x and x.to(tinyml.float32) is x
    y = x.to(tinyml.float32, False, True)  # copy=True positionally: a new tensor even with nothing to do
    assert y is not x and y.tolist() == x.tolist()
    y.add_(1.0)
    assert x.tolist() == [1.5, -2.0]
    t = torch.tensor([1.5, -2.0])
    assert t.to(torch.float32, False, True) is not t and t.to("cpu") is t
    other = tinyml.zeros(1, dtype=tinyml.float64)
    assert x.to(other).dtype is tinyml.float64


def test_module_to_shares_the_parser():
    model = tinyml.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="does not accept copy argument"):
        model.to(tinyml.float64, copy=True)
    assert model.to("cpu", tinyml.float64, False) is model and model.weight.dtype is tinyml.float64
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        model.to(device="cpu", layout=None)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_new_factories_match_torch(dtype):
    x, t = tinyml.zeros(2, 3, dtype=getattr(tinyml, dtype)), torch.zeros(2, 3, dtype=getattr(torch, dtype))
    cases = [
        ("new_zeros", (4, 1), {}), ("new_zeros", ((4, 1),), {}), ("new_ones", (3,), {}),
        ("new_full", ((2, 2), 7), {}), ("new_ones", (2,), {"dtype": "float64"}), ("new_empty", (0, 2), {}),
        ("new_tensor", ([1, 0, 2],), {}), ("new_tensor", ([1.5],), {"dtype": "float32"}),
    ]
    for name, args, kwargs in cases:
        got = getattr(x, name)(*args, **{k: getattr(tinyml, v) for k, v in kwargs.items()})
        want = getattr(t, name)(*args, **{k: getattr(torch, v) for k, v in kwargs.items()})
        assert got.shape == tuple(want.shape), name
        assert got.dtype.name == str(want.dtype).replace("torch.", ""), name
        if name != "new_empty":
            np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_new_factories_take_requires_grad_and_are_methods_only():
    g = tinyml.zeros(2).new_ones(3, requires_grad=True)
    assert g.requires_grad and g.is_leaf
    assert not hasattr(tinyml, "new_zeros") and not hasattr(torch, "new_zeros")
