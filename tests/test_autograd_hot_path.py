"""The per-op fast paths (docs/cpu_speed.md): Function.apply's straight-line cases, Context's class
defaults, the cpu dispatch table, and the engine summing gradients with the add kernel. Each
test pins a behaviour the shortcut must keep."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tinyml
from tinyml import backends
from tinyml._graph import Context
from tinyml.autograd import Edge, deliver_gradients


def test_apply_records_one_two_and_three_argument_ops_like_torch():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    x, y, z = (tinyml.tensor(v, requires_grad=True) for v in (a, b, c))
    xt, yt, zt = (torch.tensor(v, requires_grad=True) for v in (a, b, c))
    out = (x.tanh() * y + tinyml.addcmul(x, y, z, value=0.5)).sum()  # 1, 2 and 4 arguments
    out_t = (xt.tanh() * yt + torch.addcmul(xt, yt, zt, value=0.5)).sum()
    out.backward()
    out_t.backward()
    for t, tt in ((x, xt), (y, yt), (z, zt)):
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_apply_with_one_argument_needing_grad_gives_none_edges_for_the_others():
    x = tinyml.randn(3, requires_grad=True)
    w = tinyml.randn(3)
    y = x * w
    assert [e is None for e in y.grad_fn.next_edges] == [False, True]
    assert y.grad_fn.needs_input_grad == (True, False)
    z = w * 2.0
    assert z.grad_fn is None and not z.requires_grad


def test_apply_without_grad_records_nothing_and_flags_every_argument_false():
    seen = []

    class Probe(tinyml.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, c):
            seen.append(ctx.needs_input_grad)
            return tinyml.backends.run("add", a, b)

    x = tinyml.randn(2, requires_grad=True)
    with tinyml.no_grad():
        out = Probe.apply(x, x, 1.0)
    assert seen == [(False, False, False)]
    assert out.grad_fn is None and not out.requires_grad


def test_context_defaults_and_release_keep_the_node_structure():
    ctx = Context(tinyml.autograd.Function, (True,))
    assert (ctx._saved, ctx._freed, ctx._pre_hooks, ctx._n_outputs, ctx.materialize_grads) == \
        ((), False, None, 1, True)
    ctx._n_outputs, ctx.scalars = 3, (1.0,)
    ctx.set_materialize_grads(False)
    ctx.release()
    assert ctx._freed and ctx._saved == () and ctx._n_outputs == 3 and not ctx.materialize_grads
    assert "scalars" not in ctx.__dict__  # what forward kept on ctx is freed


def test_second_backward_through_a_released_multi_output_node_raises_torchs_error():
    x = tinyml.randn(6, requires_grad=True)
    a, _, c = (x * 2).split(2)
    a.sum().backward()
    with pytest.raises(RuntimeError, match="a second time"):
        c.sum().backward()


def test_saved_own_output_is_kept_by_value_and_differentiates_twice():
    x = tinyml.tensor([0.3, -1.2], dtype=tinyml.float64, requires_grad=True)
    y = x.exp()  # saves its own output
    (g,) = tinyml.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = tinyml.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), np.exp([0.3, -1.2]))


def _slot_sum(have, g):
    """What deliver_gradients leaves in a slot that already holds `have` when `g` arrives."""
    node = tinyml.randn(*have.shape, requires_grad=True)
    buffers, consumers, ready = {node: [have]}, {node: 2}, []
    deliver_gradients((Edge((node, 0)),), (g,), buffers, consumers, ready)
    assert ready == [] and consumers[node] == 1
    return buffers[node][0]


def test_gradients_meeting_in_a_slot_sum_bitwise_as_the_add_op():
    rng = np.random.default_rng(1)
    have, g = (tinyml.tensor(rng.standard_normal((3, 4)).astype(np.float32)) for _ in range(2))
    out = _slot_sum(have, g)
    assert out.grad_fn is None and out.dtype is tinyml.float32
    assert np.array_equal(out.numpy(), (have + g).numpy())


def test_gradients_of_two_dtypes_or_shapes_in_a_slot_promote_and_broadcast_as_before():
    have = tinyml.ones(2, 3)
    out = _slot_sum(have, tinyml.ones(2, 3, dtype=tinyml.float64))
    assert out.dtype is tinyml.float64 and np.array_equal(out.numpy(), np.full((2, 3), 2.0))
    out = _slot_sum(have, tinyml.ones(3))
    assert out.shape == (2, 3) and np.array_equal(out.numpy(), np.full((2, 3), 2.0, np.float32))


def test_cpu_dispatch_table_follows_registration_and_the_profiler():
    x = tinyml.tensor([1.0, -2.0])
    calls = []
    before = backends.run("neg", x).numpy()

    @backends.register("neg", "cpu")
    def my_neg(a):
        calls.append(a.shape)
        return -a

    try:
        assert np.array_equal(backends.run("neg", x).numpy(), before) and calls == [(2,)]
    finally:
        backends.unregister("neg", "cpu")
    backends.run("neg", x)
    assert calls == [(2,)]  # the table forgot the user kernel
    with tinyml.profiler.profile() as prof:
        backends.run("neg", x)
    assert any(r.name == "neg" for r in prof.rows())


def test_run_without_a_tensor_argument_says_so():
    with pytest.raises(TypeError, match="without a tensor argument"):
        backends.run("add", 1.0, 2.0)
