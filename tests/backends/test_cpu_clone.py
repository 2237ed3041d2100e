"""The C++ clone (csrc/creation.cpp) copies a C-contiguous numeric array byte for byte, on one thread
and on several, returns a new C-contiguous array that shares no memory with its input, and declines
(NotImplemented: numpy's reference runs) what it does not take; `Tensor.clone` and the leaf-gradient
copies of the backward engine run through it with the reference's results."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from cpu_kernel_helpers import impls, needs_C

import tinyml

pytestmark = needs_C

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex64]
# empty, a 0-d array, odd sizes and one above the threading threshold (512 KiB)
SHAPES = [(0,), (), (1,), (7,), (3, 5), (2, 0, 4), (301, 1031)]


def _array(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = np.asarray(rng.standard_normal(shape) * 100).astype(dtype) if np.dtype(dtype).kind != "b" else \
        np.asarray(rng.standard_normal(shape) > 0)
    if np.dtype(dtype).kind == "f" and a.size >= 4:
        flat = a.reshape(-1)
        flat[:4] = [np.nan, -0.0, np.inf, -np.inf]
    return a


def _same_bytes(got, want):
    assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape
    assert got.flags.c_contiguous and got.flags.writeable
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_clone_copies_every_byte_into_a_new_array(dtype, shape):
    cpu, ref = impls("clone")
    x = _array(shape, dtype)
    got = cpu(x)
    _same_bytes(got, ref(x))
    assert not np.shares_memory(got, x) or x.size == 0


def test_a_nan_payload_and_signed_zero_survive():
    x = np.array([0x7FC00001, 0xFFC12345, 0x80000000, 0x00000001], dtype=np.uint32).view(np.float32)
    _same_bytes(impls("clone")[0](x), x.copy())


@pytest.mark.parametrize("threads", [1, 2])
def test_a_large_array_is_the_same_on_any_number_of_threads(threads):
    x = _array((1000, 1031), np.float32, 3)  # 4 MiB: split over the threads
    before = tinyml.get_num_threads()
    tinyml.set_num_threads(threads)
    try:
        _same_bytes(impls("clone")[0](x), x.copy())
    finally:
        tinyml.set_num_threads(before)


@pytest.mark.parametrize("make", [
    lambda: np.arange(12.0).reshape(3, 4).T,                     # a transposed view
    lambda: np.arange(20.0)[::2],                                # a strided view
    lambda: np.array([1, "a"], dtype=object),                    # references, not bytes
    lambda: np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]),       # structured
    lambda: np.zeros(5, dtype=ml_dtypes.bfloat16),               # an extension dtype
    lambda: np.ma.masked_array(np.arange(4.0)),                  # a subclass keeps numpy's type
    lambda: np.frombuffer(b"\0" * 17, dtype=np.uint8)[1:].view(np.float64),  # misaligned
    lambda: [1.0, 2.0],                                          # not an array
])
def test_clone_declines_what_it_does_not_take(make):
    x = make()
    assert impls("clone")[0](x) is NotImplemented


def test_tensor_clone_and_leaf_gradients_go_through_the_kernel():
    x = tinyml.tensor(_array((300, 1031), np.float32, 5), requires_grad=True)
    y = tinyml.tensor(_array((300, 1031), np.float32, 6), requires_grad=True)
    g = tinyml.tensor(_array((300, 1031), np.float32, 7))
    (x + y).backward(g)  # both leaves receive g itself: each takes a copy
    for leaf in (x, y):
        _same_bytes(leaf.grad.numpy(), g.numpy())
        assert not np.shares_memory(leaf.grad.numpy(), g.numpy())
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
    c = x.detach().clone()
    _same_bytes(c.numpy(), x.detach().numpy())
    t = x.detach().t().clone()  # a view: the reference's C-order copy
    _same_bytes(t.numpy(), np.ascontiguousarray(x.detach().numpy().T))
