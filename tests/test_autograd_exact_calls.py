"""Session 12's per-op shortcuts (docs/cpu_speed.md, "Session 12: per-op overhead") against the
calls they stand for.

    apply1/2/3 (tinyml/_apply_exact.py)    Fn.apply(a), Fn.apply(a, b), Fn.apply(a, b, c): the same
                                           node, needs, edges, grad mode and saved outputs; a
                                           replaced Function.apply (profiler, anomaly mode,
                                           checkpoint) still sees every op
    run1/run2 (backends/_run_exact.py)     run(name, a), run(name, a, b): the same kernel and result,
                                           anything else handed to run
    run_and_deliver's chain                the engine's order and gradients, bit for bit
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tinyml
from tinyml import _function_type, autograd, backends
from tinyml._apply_exact import apply1, apply2, apply3
from tinyml._saved_output import SavedOutput
from tinyml.backends import run, run1, run2
from tinyml.ops.elementwise import Mul
from tinyml.ops.pointwise import MinMax
from tinyml.ops.unary import Tanh


def _pair(requires=(True, True)):
    rng = np.random.default_rng(1)
    return [tinyml.tensor(rng.standard_normal(5).astype(np.float32), requires_grad=r) for r in requires]


def _structure(out):
    node = out.grad_fn
    if node is None:
        return None
    edges = [None if e is None else (type(e[0]).__name__, e[1]) for e in node.next_edges]
    saved = [None if e is None else type(e[0]).__name__ for e in node._saved]
    return node.fn, node.needs_input_grad, edges, saved, out.requires_grad


@pytest.mark.parametrize("requires", [(True, True), (True, False), (False, True), (False, False)])
def test_apply2_records_what_function_apply_records(requires):
    x, w = _pair(requires)
    fast, slow = apply2(Mul, x, w), Mul.apply(x, w)
    assert np.array_equal(fast.detach().numpy(), slow.detach().numpy())
    assert _structure(fast) == _structure(slow)
    fast_s, slow_s = apply2(Mul, x, 0.5), Mul.apply(x, 0.5)
    assert _structure(fast_s) == _structure(slow_s)
    if fast.grad_fn is not None:  # the two nodes give the same gradients, bit for bit
        grads = []
        for y in (fast, slow):
            x.grad = w.grad = None
            y.sum().backward()
            grads.append([None if t.grad is None else t.grad.numpy() for t in (x, w)])
        for a, b in zip(*grads):
            assert (a is None and b is None) or np.array_equal(a, b)


def test_apply1_and_apply3_record_what_function_apply_records_and_keep_outputs_by_value():
    x, w = _pair()
    y = apply1(Tanh, x)
    assert _structure(y) == _structure(Tanh.apply(x))
    assert type(y.grad_fn._saved[0][0]) is SavedOutput  # tanh's own output, kept by value
    m = apply3(MinMax, x, w, True)
    assert _structure(m) == _structure(MinMax.apply(x, w, True))
    (y * m).sum().backward()
    xt, wt = (torch.tensor(t.detach().numpy(), requires_grad=True) for t in (x, w))
    (xt.tanh() * torch.maximum(xt, wt)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_the_exact_applies_run_forward_with_grad_off_and_record_nothing_in_no_grad():
    seen = []

    class Probe(autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            seen.append((tinyml.is_grad_enabled(), ctx.needs_input_grad))
            return run2("add", a, b)

        @staticmethod
        def backward(ctx, g):
            return g, g

    x, w = _pair((True, False))
    out = apply2(Probe, x, w)
    with tinyml.no_grad():
        quiet = apply2(Probe, x, w)
    assert seen == [(False, (True, False)), (False, (False, False))]
    assert out.grad_fn is not None and quiet.grad_fn is None and not quiet.requires_grad
    assert tinyml.is_grad_enabled()


def test_a_replaced_function_apply_sees_the_exact_applies():
    calls = []
    original = autograd.Function.__dict__["apply"]

    def counting(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return original.__func__(cls, *args, **kwargs)

    x, w = _pair()
    autograd.Function.apply = classmethod(counting)
    try:
        assert not _function_type.plain_apply
        ((x * w).tanh() + x).maximum(w)
    finally:
        autograd.Function.apply = original
    assert _function_type.plain_apply
    assert calls == ["Mul", "Tanh", "Add", "MinMax"]


def test_a_subclass_with_its_own_apply_turns_the_shortcut_off_while_it_has_one():
    class Own(autograd.Function):
        @classmethod
        def apply(cls, *args):
            return "own"

    try:
        assert not _function_type.plain_apply
        assert apply1(Own, 1.0) == "own"
    finally:
        del Own.apply
    assert _function_type.plain_apply


def test_profiler_and_anomaly_mode_still_see_each_op():
    x, w = _pair()
    with tinyml.profiler.profile() as prof:
        (x * w).sigmoid().sum().backward()
    names = {r.name for r in prof.rows()}
    assert {"Mul", "Sigmoid", "MulBackward", "SigmoidBackward"} <= names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with autograd.detect_anomaly():
            y = (x * w).tanh()
    assert "anomaly_stack" in y.grad_fn.__dict__ and "anomaly_stack" in y.grad_fn.next_edges[0][0].__dict__


@pytest.mark.parametrize("b", ["tensor", 0.5, "list"])
def test_run1_and_run2_are_run(b):
    x, w = _pair((False, False))
    assert np.array_equal(run1("tanh", x).numpy(), run("tanh", x).numpy())
    if b == "list":
        out = run2("cat", [x, w], 0)  # a list argument: handed to run
        assert np.array_equal(out.numpy(), run("cat", [x, w], 0).numpy())
        return
    other = w if b == "tensor" else b
    backends.clear_cache()  # a kernel not in the table yet: run fills it
    assert np.array_equal(run2("mul", x, other).numpy(), run("mul", x, other).numpy())
    assert np.array_equal(run2("mul", x, other).numpy(), run("mul", x, other).numpy())


def test_run2_with_a_plain_value_first_and_on_the_reference_kernels():
    x, _ = _pair((False, False))
    with backends.force_reference():
        assert np.array_equal(run2("mul", x, 2.0).numpy(), x.numpy() * np.float32(2.0))
    with pytest.raises(TypeError, match="without a tensor argument"):
        run2("mul", 1.0, 2.0)


def _ordered_graph(log):
    """Custom nodes that log their backward: a chain, a fork (two consumers) and a leaf used twice."""

    class Step(autograd.Function):
        @staticmethod
        def forward(ctx, a, name):
            ctx.label = name
            return run1("neg", a)

        @staticmethod
        def backward(ctx, g):
            log.append(ctx.label)
            return run1("neg", g), None

    x, w = _pair()
    a = Step.apply(x * w, "a")
    b = Step.apply(Step.apply(a, "b1"), "b2")
    c = Step.apply(a, "c")
    return x, w, Step.apply(b * c + w, "top").sum()


def test_the_chained_engine_runs_nodes_in_the_general_steps_order_with_the_same_bits():
    results = []
    for anomaly in (False, True):  # anomaly mode wraps run_node: every node takes the general steps
        log = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            autograd.set_detect_anomaly(anomaly)
            try:
                x, w, out = _ordered_graph(log)
                out.backward()
            finally:
                autograd.set_detect_anomaly(False)
        results.append((log, x.grad.numpy(), w.grad.numpy()))
    (log0, x0, w0), (log1, x1, w1) = results
    assert log0 == log1 and sorted(log0) == ["a", "b1", "b2", "c", "top"]
    assert np.array_equal(x0, x1) and np.array_equal(w0, w1)


def test_a_freed_node_inside_a_chain_still_raises_and_a_hooked_one_still_runs_its_hook():
    x, w = _pair()
    y = (x * w).tanh().sigmoid()
    y.sum().backward()
    with pytest.raises(RuntimeError, match="a second time"):
        y.sum().backward()
    seen = []
    x, w = _pair()
    h = x * w
    h.register_hook(lambda g: seen.append("h") or g * 2)  # a pre-hook on MulBackward, inside the chain
    h.tanh().sigmoid().sum().backward()
    xt, wt = (torch.tensor(t.detach().numpy(), requires_grad=True) for t in (x, w))
    ht = xt * wt
    ht.register_hook(lambda g: g * 2)
    ht.tanh().sigmoid().sum().backward()
    assert seen == ["h"]
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_quiet_enter_and_exit_are_the_quiet_block():
    from tinyml.backends.reference import elementwise as ref

    with np.errstate(under="raise", over="warn"):
        before = np.geterr()
        with ref.quiet():
            expected = np.geterr()
        token = ref.quiet_enter()
        try:
            assert np.geterr() == expected
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a warning would raise here
                assert np.isinf(np.exp(np.full(3, 100.0, np.float32))).all()
        finally:
            ref.quiet_exit(token)
        assert np.geterr() == before
    outside = np.geterr()
    with pytest.raises(ZeroDivisionError):
        token = ref.quiet_enter()
        try:
            raise ZeroDivisionError
        finally:
            ref.quiet_exit(token)
    assert np.geterr() == outside


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_and_sigmoid_kernels_stay_silent_and_give_numpys_bits(dtype):
    from tinyml.backends.cpu import unary as cpu_unary
    from tinyml.backends.reference import unary as ref_unary

    x = np.array([0.0, -0.0, 1.0, -1.0, 100.0, -100.0, 800.0, -800.0, np.inf, -np.inf, np.nan], dtype)
    with np.errstate(over="raise"):  # the caller's state: the kernels still silence overflow
        y, s = ref_unary.exp(x), cpu_unary.sigmoid(x)
        assert np.geterr()["over"] == "raise"
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        y_np, s_np = np.exp(x), (1 / (1 + np.exp(-x))).astype(dtype)
    assert np.array_equal(y.view(np.uint8), y_np.view(np.uint8))
    assert np.array_equal(s.view(np.uint8), s_np.view(np.uint8))
