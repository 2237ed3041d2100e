"""The per-op shortcuts of issue 16 (docs/cpu_speed.md, section 2) against the paths they shortcut.

    backward formulas with grad off   Mul/Div/Sub/Exp run their kernels on the gradient directly
                                      (`_broadcast.times`, `kernel_ready`); with create_graph=True
                                      the same formulas run as tensor ops: the values must agree bit
                                      for bit, and with PyTorch to its tolerance
    the engine's common node          `_backward_steps.run_and_deliver`; anomaly mode (which wraps
                                      run_node) takes the general steps: same gradients, bit for bit
    saved tensors                     `saved_one` / `saved_two` (tinyml/_saved_output.py) instead of
                                      the property ctx.saved_tensors: its values and its errors
    reference kernels                 `quiet()` (np.errstate set cheaply) and 0-d float constants:
                                      the same bits, warnings and error state as the plain numpy code
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from helpers import load_script

import tinyml
from tinyml import autograd
from tinyml.backends.reference import elementwise as ref_elementwise
from tinyml.backends.reference import pointwise as ref_pointwise
from tinyml.backends.reference import unary as ref_unary

# (name, f(x, w) on either library); x and w have shape (3, 4) unless the case broadcasts
BINARY = {
    "mul": lambda x, w: x * w,
    "mul_scalar": lambda x, w: x * 0.9,
    "rmul_scalar": lambda x, w: 1.5 * x,
    "div": lambda x, w: x / (w * w + 0.5),
    "div_scalar": lambda x, w: x / 1.5,
    "rdiv": lambda x, w: 2.0 / (x * x + 1),
    "sub": lambda x, w: x - w,
    "rsub_scalar": lambda x, w: 0.5 - x,
    "exp": lambda x, w: (x * 0.5).exp(),
    "tanh": lambda x, w: x.tanh() * w,
    "sigmoid": lambda x, w: x.sigmoid() * w,
    "maximum": lambda x, w: x.maximum(w),
    "maximum_scalar": lambda x, w: x.maximum(0.25 if isinstance(x, tinyml.Tensor) else torch.tensor(0.25)),
    "chain": lambda x, w: ((x * w + 0.5).tanh() - w).sigmoid() / 1.5,
}


def _leaves(lib, dtype: str, seed: int = 0, w_shape=(3, 4)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4)).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    w.flat[0] = x.flat[0]  # a tie for maximum: g/2 to each side
    make = tinyml.tensor if lib is tinyml else torch.tensor
    return tuple(make(a, requires_grad=True) for a in (x, w))


def _grads(fn, dtype: str, create_graph: bool, w_shape=(3, 4)):
    x, w = _leaves(tinyml, dtype, w_shape=w_shape)
    out = fn(x, w)
    g = tinyml.tensor(np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape)).astype(dtype))
    out.backward(g, create_graph=create_graph)
    return [None if t.grad is None else t.grad.detach().numpy() for t in (x, w)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_kernel_backward_is_bitwise_the_tensor_formula_and_matches_torch(name, dtype):
    fn = BINARY[name]
    fast = _grads(fn, dtype, create_graph=False)
    slow = _grads(fn, dtype, create_graph=True)  # the same formulas as differentiable tensor ops
    for a, b in zip(fast, slow):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == np.dtype(dtype) and np.array_equal(a, b, equal_nan=True)
    xt, wt = _leaves(torch, dtype)
    out = fn(xt, wt)
    out.backward(torch.tensor(np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape)).astype(dtype)))
    for a, t in zip(fast, (xt, wt)):
        if a is not None:
            np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("w_shape", [(4,), (1, 4), (3, 1)])
def test_broadcast_operands_take_the_op_path_and_reduce_like_torch(w_shape):
    for name in ("mul", "div", "sub", "maximum", "chain"):
        fast = _grads(BINARY[name], "float32", create_graph=False, w_shape=w_shape)
        xt, wt = _leaves(torch, "float32", w_shape=w_shape)
        out = BINARY[name](xt, wt)
        g = np.linspace(-1, 1, out.numel(), dtype=np.float32).reshape(tuple(out.shape))
        out.backward(torch.tensor(g))
        assert fast[1].shape == w_shape
        np.testing.assert_allclose(fast[0], xt.grad.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fast[1], wt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_mixed_dtypes_promote_and_cast_back_like_torch():
    x32 = tinyml.tensor(np.linspace(-1, 1, 6, dtype=np.float32), requires_grad=True)
    w64 = tinyml.tensor(np.linspace(0.5, 2, 6), requires_grad=True)
    y = (x32 * w64 / w64 - w64).exp()
    assert y.dtype is tinyml.float64
    y.sum().backward()
    xt = torch.tensor(x32.detach().numpy(), requires_grad=True)
    wt = torch.tensor(w64.detach().numpy(), requires_grad=True)
    (xt * wt / wt - wt).exp().sum().backward()
    assert x32.grad.dtype is tinyml.float32 and w64.grad.dtype is tinyml.float64
    np.testing.assert_allclose(x32.grad.numpy(), xt.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w64.grad.numpy(), wt.grad.numpy(), rtol=1e-12)


def test_a_gradient_of_another_dtype_reaching_mul_takes_the_op_path():
    class Widen(autograd.Function):  # identity whose backward hands back a float64 gradient
        @staticmethod
        def forward(ctx, a):
            return tinyml.backends.run("clone", a)

        @staticmethod
        def backward(ctx, g):
            return g.to(tinyml.float64) * 3.0

    x = tinyml.tensor([1.0, -2.0, 0.5], requires_grad=True)
    w = tinyml.tensor([0.25, 4.0, -1.0], requires_grad=True)
    Widen.apply(x * w).sum().backward()
    # g (float64) * w (float32) promotes to float64; the leaves cast back to float32
    assert x.grad.dtype is tinyml.float32 and x.grad.tolist() == [0.75, 12.0, -3.0]
    assert w.grad.tolist() == [3.0, -6.0, 1.5]


def _graph(x, w):
    """Shared nodes, a leaf used several times, a multi-output node used in part, a root also consumed."""
    a, b, _ = (x * w).split(1, dim=0)
    h = (a * 2 + b).tanh()
    return h * h + w.sum(0, keepdim=True).sigmoid(), h


@pytest.mark.parametrize("create_graph", [False, True])
def test_inlined_engine_steps_give_the_general_steps_gradients_bitwise(create_graph):
    grads = []
    for anomaly in (False, True):  # anomaly mode wraps run_node: every node takes the general steps
        x, w = _leaves(tinyml, "float32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            autograd.set_detect_anomaly(anomaly)
            try:
                out, h = _graph(x, w)
                autograd.backward([out, h], [tinyml.ones(*out.shape), tinyml.ones(*h.shape)],
                                  create_graph=create_graph)
            finally:
                autograd.set_detect_anomaly(False)
        grads.append([x.grad.detach().numpy(), w.grad.detach().numpy()])
    for a, b in zip(*grads):
        assert np.array_equal(a, b)
    xt, wt = _leaves(torch, "float32")
    out, h = _graph(xt, wt)
    torch.autograd.backward([out, h], [torch.ones(out.shape), torch.ones(h.shape)])
    np.testing.assert_allclose(grads[0][0], xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[0][1], wt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_hooks_retain_grad_and_pre_hooks_still_run_in_a_chain():
    seen = []
    x, w = _leaves(tinyml, "float32")
    xt, wt = _leaves(torch, "float32")
    outs = []
    for lib_x, lib_w in ((x, w), (xt, wt)):
        h = lib_x * lib_w
        h.retain_grad()
        k = (h + 0.5).tanh()
        k.register_hook(lambda g: g * 2)  # doubles the gradient flowing into TanhBackward
        lib_w.register_hook(lambda g, lib=type(lib_w).__module__: seen.append(lib) or g)
        (k * 0.9).sum().backward()
        outs.append((h.grad, lib_x.grad, lib_w.grad))
    assert seen == ["tinyml.tensor", "torch"]
    for a, b in zip(*outs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_a_second_backward_through_freed_nodes_raises_and_retain_graph_accumulates():
    x, w = _leaves(tinyml, "float32")
    y = (x * w).tanh()
    y.sum().backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)
    with pytest.raises(RuntimeError, match="a second time"):
        y.sum().backward()


def test_a_saved_tensor_modified_in_place_still_raises_with_the_versions():
    x = tinyml.randn(4, requires_grad=True)
    w = tinyml.randn(4)
    y = x * w
    with tinyml.no_grad():
        w.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.sum().backward()


SAVING = {"tanh": lambda x, w: x.tanh(), "sigmoid": lambda x, w: x.sigmoid(), "exp": lambda x, w: x.exp(),
          "mul": lambda x, w: x * w, "div": lambda x, w: x / w, "maximum": lambda x, w: x.maximum(w)}


@pytest.mark.parametrize("name", sorted(SAVING))
def test_saved_one_and_two_keep_saved_tensors_errors(name):
    """The formulas read saved tensors through _saved_output.saved_one / saved_two: the values of
    ctx.saved_tensors, and its errors for a freed node and for a saved tensor (an input, or the
    op's own output) modified in place."""
    x, w = _leaves(tinyml, "float64")
    y = SAVING[name](x, w)
    node = y.grad_fn
    y.backward(tinyml.ones_like(y), retain_graph=True)
    before = x.grad.numpy().copy()
    g = tinyml.ones_like(y)
    with tinyml.no_grad():  # the node's formula as the engine runs it (grad off)
        grads = node.fn.backward(node, g)
        assert np.array_equal((grads[0] if isinstance(grads, tuple) else grads).numpy(), before)
        (y if name in ("tanh", "sigmoid", "exp") else w).mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an in-place operation"):
            node.fn.backward(node, g)
    x2, w2 = _leaves(tinyml, "float64")
    y2 = SAVING[name](x2, w2)
    y2.sum().backward()
    with pytest.raises(RuntimeError, match="a second time"):
        y2.grad_fn.fn.backward(y2.grad_fn, tinyml.ones_like(y2))


def test_the_profiler_still_sees_every_backward_node():
    x, w = _leaves(tinyml, "float32")
    loss = ((x * w).tanh() / 1.5).sum()
    with tinyml.profiler.profile() as prof:
        loss.backward()
    names = {(r.name, r.kind) for r in prof.rows()}
    for node in ("SumBackward", "DivBackward", "TanhBackward", "MulBackward"):
        assert (node, "backward") in names
    assert ("mul", "kernel") in {(r.name, r.kind) for r in prof.rows()}


def test_quiet_is_np_errstate_and_restores_the_callers_state():
    with np.errstate(under="raise", over="warn"):
        before = np.geterr()
        with ref_elementwise.quiet():
            inside = np.geterr()
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a warning would raise here
                assert np.isinf(np.float32(1) / np.zeros(1, np.float32))[0]
            with ref_elementwise.quiet():  # nested: the same state, restored to it
                assert np.geterr() == inside
            assert np.geterr() == inside
        assert np.geterr() == before
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="raise"):
        assert inside == np.geterr()  # what np.errstate makes from the same outer state
    outside = np.geterr()
    with pytest.raises(ZeroDivisionError):
        with ref_elementwise.quiet():
            raise ZeroDivisionError
    assert np.geterr() == outside  # restored when the block raises too


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -40.0, 100.0, 1e30, np.inf, -np.inf, np.nan])


def _old_kernels():
    """The kernels as written with Python numbers (before the 0-d constants): the oracle."""
    def sigmoid(x):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return (1 / (1 + np.exp(-x))).astype(x.dtype, copy=False)

    def minmax_backward(a, b, g, is_max):
        win_a = np.greater(a, b) if is_max else np.less(a, b)
        share = np.where(win_a, 1.0, np.where(np.equal(a, b), 0.5, 0.0)).astype(g.dtype)
        ga = g * share
        return ga, (g - ga).astype(g.dtype, copy=False)

    return {"tanh_backward": lambda y, g: (g * (1 - y * y)).astype(g.dtype, copy=False),
            "sigmoid_backward": lambda y, g: (g * y * (1 - y)).astype(g.dtype, copy=False),
            "sigmoid": sigmoid, "minmax_backward": minmax_backward}


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_kernels_with_0d_constants_give_the_python_number_bits(dtype):
    dt = tinyml.dtypes.as_dtype(dtype).np
    rng = np.random.default_rng(3)
    with np.errstate(over="ignore"):  # 1e30 is inf in float16
        x = np.concatenate([SPECIAL, rng.standard_normal(20)]).astype(dt)
        g = np.concatenate([SPECIAL[::-1], rng.standard_normal(20)]).astype(dt)
    old = _old_kernels()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow warnings of the plain code, the same either way
        pairs = [(ref_unary.tanh_backward(x, g), old["tanh_backward"](x, g)),
                 (ref_unary.sigmoid_backward(x, g), old["sigmoid_backward"](x, g)),
                 (ref_unary.sigmoid(x), old["sigmoid"](x))]
        for is_max in (True, False):
            for b in (g, 0.5):
                pairs += list(zip(ref_pointwise.minmax_backward(x, b, g, is_max),
                                  old["minmax_backward"](x, b, g, is_max)))
    for new, expected in pairs:
        assert new.dtype == expected.dtype == dt
        assert np.array_equal(new.view(np.uint8), expected.view(np.uint8))


def test_bench_overhead_times_every_step_kind_on_both_libraries(capsys):
    bench = load_script("bench/overhead.py", "bench_overhead")
    libs = [(tinyml, *_leaves(tinyml, "float32")), (torch, *_leaves(torch, "float32"))]
    bench.per_op(libs, repeats=1, warmup=0, clock=time.process_time)
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| ") and "step" not in line]
    assert [r.split(" | ")[0][2:] for r in rows] == list(bench.STEPS)
    assert len(bench.measure(libs, repeats=1, warmup=0, clock=time.process_time)) == 2  # one row per library
