"""The C++ arithmetic kernels (csrc/elementwise.cpp: add, sub, mul, div) give the numpy reference's
bits for every operand layout they take, on one thread and on several, and decline (NotImplemented:
the reference runs) every input they do not take; the ops on them match PyTorch forward and
backward, and `run` hands a declined call to the reference without the dispatcher's loop
(backends._cpu_run)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from cpu_kernel_helpers import impls, needs_C

import tinyml
from tinyml import backends
from tinyml.testing import gradcheck

pytestmark = needs_C

BINARY = ["add", "sub", "mul", "div"]
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 3.0, 1e30, -1e-30, 3e38, np.inf, -np.inf, np.nan, 7.0])
# empty, odd sizes, 2-D and 3-D, and one above the kernels' threading threshold (1 << 17 elements)
SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4), (64,), (135, 1031)]


def _array(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(int(np.prod(shape))) * 3
    k = min(a.size, len(SPECIAL))
    a[:k] = np.roll(SPECIAL, seed)[:k]
    return a.astype(dtype).reshape(shape)


def _operands(kind, shape, dtype):
    """(a, b) of one layout the kernels take: arrays, a Python float on either side, or an expand."""
    a, b = _array(shape, dtype, 1), _array(shape, dtype, 2)
    if kind == "arrays":
        return a, b
    if kind == "array, float":
        return a, 0.1
    if kind == "float, array":
        return -2.5, b
    if kind == "row broadcast":  # a bias: the last dimension repeats down the rows
        return a, np.broadcast_to(b.reshape(-1, shape[-1])[0], shape)
    if kind == "one element broadcast":
        return np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * len(shape)), shape), b
    if kind == "one element and a float":
        return np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * len(shape)), shape), 3.0
    raise AssertionError(kind)


KINDS = ["arrays", "array, float", "float, array", "row broadcast", "one element broadcast",
         "one element and a float"]


def _same_bits(got, want):
    want = np.asarray(want)
    assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape
    assert got.flags.c_contiguous and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_binary_kernels_are_the_reference_bit_for_bit(kind, shape):
    if shape[0] == 0 and ("one element" in kind or kind == "row broadcast"):
        pytest.skip("an empty array has no element or row to broadcast")
    for dtype in (np.float32, np.float64):
        a, b = _operands(kind, shape, dtype)
        for name in BINARY:
            cpu, ref = impls(name)
            with np.errstate(all="raise"):  # no floating-point warning: inf and NaN are the answers
                got = cpu(a, b)
            with np.errstate(all="ignore"):
                want = ref(a, b)
            assert got is not NotImplemented, (name, dtype)
            _same_bits(got, want)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_large_array_gives_the_same_bits_on_any_number_of_threads(threads):
    a, b = _array((300, 1031), np.float32, 3), _array((300, 1031), np.float32, 4)
    bias = np.broadcast_to(_array((1031,), np.float32, 5), a.shape)
    before = tinyml.get_num_threads()
    tinyml.set_num_threads(threads)
    try:
        for name in BINARY:
            cpu, ref = impls(name)
            for x, y in ((a, b), (a, bias), (a, 0.3)):
                with np.errstate(all="ignore"):
                    _same_bits(cpu(x, y), ref(x, y))
    finally:
        tinyml.set_num_threads(before)


def _big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


class _Sub(np.ndarray):
    pass


DECLINED = {
    "float16": lambda a: (a.astype(np.float16), a.astype(np.float16)),
    "int32": lambda a: (a.astype(np.int32), a.astype(np.int32)),
    "mixed dtypes": lambda a: (a, a.astype(np.float64)),
    "other shapes": lambda a: (a, a[:, :-1]),
    "a column broadcast": lambda a: (a, np.broadcast_to(a[:, :1], a.shape)),
    "a strided view": lambda a: (a[:, ::2], a[:, 1::2]),
    "a transposed view": lambda a: (a.T, a.T.copy()),
    "0-d arrays": lambda a: (np.asarray(a[0, 0]), np.asarray(a[0, 1])),
    "a numpy float64 scalar": lambda a: (a, np.float64(0.5)),  # not weak: numpy promotes to float64
    "a Python int": lambda a: (a, 2),
    "a float beyond float32": lambda a: (a, 1e300),
    "big-endian": lambda a: (_big_endian(a), _big_endian(a)),
    "a subclass": lambda a: (a.view(_Sub), a),
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_binary_kernels_decline_what_they_do_not_take_and_the_reference_runs(case):
    a, b = DECLINED[case](np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4))
    for name in BINARY:
        cpu, ref = impls(name)
        assert cpu(a, b) is NotImplemented, name
        with np.errstate(all="ignore"):
            try:
                want = ref(a, b)
            except ValueError:  # shapes numpy cannot broadcast: the dispatched kernel raises the same
                with pytest.raises(ValueError):
                    backends.dispatch(name)(a, b)
                continue
            got = backends.dispatch(name)(a, b)
        assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()


def test_the_kernels_write_only_their_own_result():
    a, b = _array((4, 5), np.float32, 7), _array((4, 5), np.float32, 8)
    before = a.copy(), b.copy()
    for name in BINARY:
        out = impls(name)[0](a, b)
        assert out is not a and out is not b and not np.shares_memory(out, a) and not np.shares_memory(out, b)
    assert a.tobytes() == before[0].tobytes() and b.tobytes() == before[1].tobytes()


OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
       "div": lambda a, b: a / b, "scalars": lambda a, b: (2.0 - a * 0.5) / 1.5 + b / 3.0 - (-b)}


@pytest.mark.parametrize("bias", [False, True], ids=["same shape", "bias"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_on_the_cpu_kernels_match_torch_forward_backward_and_gradcheck(op, bias):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((5,) if bias else (3, 5)) + 3.0  # away from 0: a divisor
    f = OPS[op]
    for dtype in (np.float32, np.float64):
        xt, wt = (tinyml.tensor(v.astype(dtype), requires_grad=True) for v in (x, w))
        xp, wp = (torch.tensor(v.astype(dtype), requires_grad=True) for v in (x, w))
        out_t, out_p = f(xt, wt), f(xp, wp)
        g = rng.standard_normal(out_p.shape).astype(dtype)
        out_t.backward(tinyml.tensor(g))
        out_p.backward(torch.tensor(g))
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out_t.detach().numpy(), out_p.detach().numpy(), **tol)
        np.testing.assert_allclose(xt.grad.numpy(), xp.grad.numpy(), **tol)
        np.testing.assert_allclose(wt.grad.numpy(), wp.grad.numpy(), **tol)
    assert gradcheck(f, (tinyml.tensor(x, requires_grad=True), tinyml.tensor(w, requires_grad=True)))


def test_ops_keep_the_reference_results_bit_for_bit():
    x = tinyml.tensor(_array((6, 7), np.float32, 9), requires_grad=True)
    w = tinyml.tensor(_array((7,), np.float32, 10), requires_grad=True)

    def step():
        x.grad = w.grad = None
        y = ((x * w + 0.5) / 1.5 - w).maximum(x) - 2.0 * x
        y.sum().backward()
        return y.detach().numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()

    got = step()
    with np.errstate(all="ignore"), backends.force_reference():
        want = step()
    for g, r in zip(got, want):
        assert g.tobytes() == r.tobytes()


def test_run_hands_a_declined_call_to_the_reference_and_a_wrapper_sees_which_ran():
    seen = []

    def spy(fn, name, backend):
        def wrapped(*args):
            out = fn(*args)
            if name == "add" and out is not NotImplemented:
                seen.append(backend)
            return out
        return wrapped

    backends._wrappers.append(spy)
    backends.clear_cache()
    try:
        a = tinyml.tensor([1.0, 2.0])
        assert (a + a).tolist() == [2.0, 4.0]
        assert (a.half() + a.half()).tolist() == [2.0, 4.0]  # float16: the cpu kernel declines
        assert (a.double() + 0.5).tolist() == [1.5, 2.5]
    finally:
        backends._wrappers.remove(spy)
        backends.clear_cache()
    assert seen == ["cpu", "reference", "cpu"]
    a + a
    first, fallback = backends._cpu_run["add"]  # the cpu kernel and the reference, not dispatch's loop
    assert first is not fallback and backends.dispatch("add") not in (first, fallback)
