"""The C++ kernels of issue 16's per-op path (csrc/unary.cpp, csrc/pointwise.cpp): tanh_backward,
sigmoid_backward, sigmoid's tail and minmax_backward give the numpy reference's bits, and decline
(NotImplemented, then the reference runs) every input they do not take."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from cpu_kernel_helpers import impls, needs_C

import tinyml
from tinyml import backends
from tinyml.testing import gradcheck

pytestmark = needs_C

SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -40.0, -100.0, 100.0, 1e30, np.inf, -np.inf, np.nan])
# 0-d, empty, odd sizes, 2-D, and one above the kernels' threading threshold (1 << 16 elements)
SHAPES = [(), (0,), (1,), (7,), (3, 5), (64,), (70001,)]
KERNELS = ["tanh_backward", "sigmoid_backward", "sigmoid", "minmax_backward_max", "minmax_backward_min"]


def _arrays(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    out = []
    for k in range(3):
        a = rng.standard_normal(n) * 3
        a[: min(n, len(SPECIAL))] = np.roll(SPECIAL, 2 * k)[: min(n, len(SPECIAL))]
        out.append(a.astype(dtype).reshape(shape))
    out[1].flat[3:5] = out[0].flat[3:5] if n > 5 else out[1].flat[3:5]  # ties for minmax
    return out


def _call(fn, name, a, b, g):
    if name.startswith("minmax_backward"):
        return fn(a, b, g, name.endswith("max"))
    return fn(a) if name == "sigmoid" else fn(a, g)


def _same_bits(x, y):
    xs, ys = (x, y) if isinstance(x, tuple) else ((x,), (y,))
    assert len(xs) == len(ys)
    for p, q in zip(xs, ys):
        p, q = np.asarray(p), np.asarray(q)
        assert p.dtype == q.dtype and p.shape == q.shape and p.tobytes() == q.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", KERNELS)
def test_cpu_kernel_is_the_reference_bit_for_bit(name, shape, dtype):
    cpu, ref = impls(name.rsplit("_", 1)[0] if name.startswith("minmax") else name)
    a, b, g = _arrays(shape, dtype, seed=len(shape))
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # silenced as in the reference
        got = _call(cpu, name, a, b, g)
    with np.errstate(all="ignore"):
        want = _call(ref, name, a, b, g)
    assert got is not NotImplemented
    _same_bits(got, want)


DECLINED = {
    "float16": lambda a: (a.astype(np.float16), a.astype(np.float16), a.astype(np.float16)),
    "mixed dtypes": lambda a: (a, a.astype(np.float64), a),
    "a broadcast view": lambda a: (a, np.broadcast_to(a[:1], a.shape), a),
    "a strided view": lambda a: (a[::2], a[1::2], a[::2]),
    "other shapes": lambda a: (a, a[:-1], a),
    "a Python number": lambda a: (a, 0.5, a),
}


@pytest.mark.parametrize("case", sorted(DECLINED))
@pytest.mark.parametrize("name", KERNELS)
def test_cpu_kernel_declines_what_it_does_not_take_and_the_reference_runs(name, case):
    kernel = name.rsplit("_", 1)[0] if name.startswith("minmax") else name
    cpu, ref = impls(kernel)
    a, b, g = DECLINED[case](np.linspace(-2, 2, 10, dtype=np.float32))
    if name == "sigmoid":
        if case not in ("float16",):
            pytest.skip("sigmoid has one operand: any float32/float64 layout is taken")
        args = (a,)
    elif name.startswith("minmax"):
        args = (a, b, g, name.endswith("max"))
    else:
        if case == "a Python number":
            pytest.skip("a backward kernel's y and g are arrays (the reference takes nothing else)")
        args = (a, b)  # (y, g)
    assert cpu(*args) is NotImplemented
    with np.errstate(all="ignore"):
        try:
            want = ref(*args)
        except ValueError:  # shapes numpy cannot broadcast: the dispatched kernel raises the same
            with pytest.raises(ValueError):
                backends.dispatch(kernel)(*args)
            return
    _same_bits(backends.dispatch(kernel)(*args), want)


def test_sigmoid_takes_any_float_layout_and_0d_input():
    cpu, ref = impls("sigmoid")
    x = np.linspace(-50, 50, 24).reshape(4, 6)
    for view in (x.T, x[:, ::2], x[1:3], np.asarray(x[0, 0]), x.astype(np.float32).T):
        _same_bits(cpu(view), ref(view))


def test_sigmoid_writes_only_its_own_buffer():
    x = np.linspace(-3, 3, 9, dtype=np.float32)
    before = x.copy()
    impls("sigmoid")[0](x)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "maximum", "minimum"])
def test_ops_on_the_cpu_kernels_match_torch_and_gradcheck(op):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 33)), rng.standard_normal((2, 33))
    w[0, :4] = x[0, :4]  # ties: g/2 to each side, as torch
    f = {"tanh": lambda a, b: a.tanh() * b, "sigmoid": lambda a, b: a.sigmoid() * b,
         "maximum": lambda a, b: a.maximum(b), "minimum": lambda a, b: a.minimum(b)}[op]
    for dtype in (np.float32, np.float64):
        xt, wt = (tinyml.tensor(v.astype(dtype), requires_grad=True) for v in (x, w))
        xp, wp = (torch.tensor(v.astype(dtype), requires_grad=True) for v in (x, w))
        f(xt, wt).sum().backward()
        f(xp, wp).sum().backward()
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(xt.grad.numpy(), xp.grad.numpy(), **tol)
        np.testing.assert_allclose(wt.grad.numpy(), wp.grad.numpy(), **tol)
    xg = tinyml.tensor(x, requires_grad=True)
    wg = tinyml.tensor(w + 0.5, requires_grad=True)  # no ties: central differences at a kink disagree
    assert gradcheck(f, (xg, wg))
