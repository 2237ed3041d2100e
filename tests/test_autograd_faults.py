"""Autograd fault injection against PyTorch: random bad gradients handed to the engine by user code.

Three doors through which a user passes a gradient in, each fed random candidates (tensors of the
right or a wrong shape and of every dtype, Python floats, lists, ndarrays, strings, None):

    x.grad = candidate              assignment to a leaf (requiring grad or not) or an int tensor
    hook returns candidate          on a leaf or on an intermediate tensor
    y.backward(candidate)           and autograd.grad(y, x, candidate)

For each, tinyml must refuse exactly what torch refuses (raises vs accepts), with the same
exception class; what both accept must leave the same `.grad` (values and dtype).
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyml

DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "bool"]
SHAPES = [(2, 3), (3,), ()]
KINDS = ["tensor", "tensor", "tensor", "none", "float", "ndarray", "list", "str"]


def _other_shapes(shape: tuple) -> list[tuple]:
    """The shape itself and near misses: broadcastable, same numel, transposed, extra dims."""
    n = int(np.prod(shape))
    return [shape, shape, (1,) + shape, shape + (1,), (n,), (n + 1,), tuple(reversed(shape)),
            (1,) * len(shape), shape[1:]]


@st.composite
def candidates(draw, shape):
    """(kind, shape, dtype, seed): a recipe both libraries build the same value from."""
    return (draw(st.sampled_from(KINDS)), draw(st.sampled_from(_other_shapes(shape))),
            draw(st.sampled_from(DTYPES)), draw(st.integers(0, 2**16)))


def _values(shape, seed) -> np.ndarray:
    # quarters in [-4, 4]: exact in every float dtype, so casts agree bit for bit across libraries
    return np.round(np.random.default_rng(seed).uniform(-4, 4, shape) * 4) / 4


def build(lib, recipe):
    kind, shape, dtype, seed = recipe
    v = _values(shape, seed)
    if kind == "none":
        return None
    if kind == "float":
        return 1.5
    if kind == "ndarray":
        return v.astype(np.float32)
    if kind == "list":
        return v.tolist()
    if kind == "str":
        return "grad"
    dt = getattr(lib, dtype)
    return lib.tensor(v != 0 if dtype == "bool" else v.astype(np.int64) if dtype == "int64" else v).to(dt)


def outcome(fn):
    """("ok", result) or (exception class name, None)."""
    try:
        return "ok", fn()
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return type(e).__name__, None


def grad_of(t):
    """A tensor's .grad as (dtype name, float64 values), comparable across the two libraries."""
    g = t.grad
    if g is None:
        return None
    return str(g.dtype).split(".")[-1], g.detach().double().numpy()


def assert_same(t_out, m_out):
    assert t_out[0] == m_out[0], f"torch: {t_out[0]}, tinyml: {m_out[0]}"
    if t_out[0] == "ok":
        a, b = t_out[1], m_out[1]
        assert (a is None) == (b is None), (a, b)
        if a is not None:
            assert a[0] == b[0], f"grad dtype: torch {a[0]}, tinyml {b[0]}"
            np.testing.assert_array_equal(a[1], b[1])


def _leaf(lib, shape, dtype, requires_grad, seed=0):
    return lib.tensor(_values(shape, seed) if dtype != "int64" else _values(shape, seed).astype(np.int64),
                      dtype=getattr(lib, dtype), requires_grad=requires_grad)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shape=st.sampled_from(SHAPES),
       leaf=st.sampled_from([("float32", True), ("float64", True), ("float32", False), ("int64", False)]))
def test_grad_assignment_matches_torch(data, shape, leaf):
    recipe = data.draw(candidates(shape))
    outs = []
    for lib in (torch, tinyml):
        x = _leaf(lib, shape, *leaf)

        def assign(x=x, lib=lib):
            x.grad = build(lib, recipe)
            return grad_of(x)

        outs.append(outcome(assign))
    assert_same(*outs)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shape=st.sampled_from(SHAPES), dtype=st.sampled_from(["float32", "float64"]),
       on_leaf=st.booleans())
def test_hook_results_match_torch(data, shape, dtype, on_leaf):
    recipe = data.draw(candidates(shape))
    outs = []
    for lib in (torch, tinyml):
        x = _leaf(lib, shape, dtype, True)

        def run(x=x, lib=lib):
            t = x if on_leaf else x * 3
            t.register_hook(lambda g: build(lib, recipe))
            (t * 2).sum().backward()
            return grad_of(x)

        outs.append(outcome(run))
    assert_same(*outs)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shape=st.sampled_from(SHAPES), dtype=st.sampled_from(["float32", "float64"]),
       through_grad=st.booleans())
def test_backward_gradient_matches_torch(data, shape, dtype, through_grad):
    recipe = data.draw(candidates(shape))
    if recipe[0] == "none" and shape != ():
        recipe = ("tensor",) + recipe[1:]  # None is only valid for a scalar: covered by the engine tests
    outs = []
    for lib in (torch, tinyml):
        x = _leaf(lib, shape, dtype, True)

        def run(x=x, lib=lib):
            y = x * 2
            g = build(lib, recipe)
            if through_grad:
                (gx,) = lib.autograd.grad(y, x, g)
                x.grad = gx
            else:
                y.backward(g)
            return grad_of(x)

        outs.append(outcome(run))
    assert_same(*outs)


@pytest.mark.parametrize("kind", ["float", "ndarray", "str"])
def test_non_tensor_gradients_name_their_type(kind):
    x = tinyml.ones(3, requires_grad=True)
    value = build(tinyml, (kind, (3,), "float32", 0))
    name = type(value).__name__
    with pytest.raises(TypeError, match=f"got grad of type {name}"):
        x.grad = value
    x.register_hook(lambda g: value)
    with pytest.raises(TypeError, match=rf"hook '.*<lambda>' returned {name}; a tensor hook must return"):
        (x * 2).sum().backward()
