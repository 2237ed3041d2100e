"""grad_fn.next_functions / name(), tinyml.autograd.functional against torch.autograd.functional,
activation checkpointing (tinyml.utils.checkpoint) and anomaly detection."""
import warnings

import numpy as np
import pytest
import torch
import torch.autograd.functional as TF

import tinyml
import tinyml.autograd as A
from tinyml.utils.checkpoint import checkpoint


def _close(a, b, tol=1e-10):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y, tol)
        return
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


def test_next_functions_and_name():
    a = tinyml.randn(3, requires_grad=True)
    b = tinyml.randn(3)
    y = (a * b).exp().sum()
    assert y.grad_fn.name() == "SumBackward"
    exp_node, nr = y.grad_fn.next_functions[0]
    assert exp_node.name() == "ExpBackward" and nr == 0
    mul = exp_node.next_functions[0][0]
    (acc, _), (none, _) = mul.next_functions
    assert acc.name() == "AccumulateGrad" and acc.variable is a and none is None
    assert acc.next_functions == ()


def _f1(x):
    return (x.sin() * x ** 2).sum()


def _f2(x, y):
    return x.exp() * y + x * y ** 3


FUNCS = [  # (tinyml fn, torch fn, input shapes)
    (_f1, _f1, [(4,)]),
    (lambda x: x.tanh() @ x.T, lambda x: x.tanh() @ x.T, [(2, 3)]),
    (_f2, _f2, [(3,), (3,)]),
]


def _inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.standard_normal(s) for s in shapes]
    if len(arrs) == 1:
        return tinyml.tensor(arrs[0]), torch.tensor(arrs[0])
    return tuple(tinyml.tensor(a) for a in arrs), tuple(torch.tensor(a) for a in arrs)


@pytest.mark.parametrize("k", range(len(FUNCS)))
def test_jacobian_vjp_jvp_match_torch(k):
    f, tf, shapes = FUNCS[k]
    x, tx = _inputs(shapes)
    _close(A.functional.jacobian(f, x), TF.jacobian(tf, tx))
    out = tf(*tx) if isinstance(tx, tuple) else tf(tx)
    v = np.random.default_rng(1).standard_normal(tuple(out.shape))
    _close(A.functional.vjp(f, x, tinyml.tensor(v)), TF.vjp(tf, tx, torch.tensor(v)))
    u, tu = _inputs(shapes, seed=2)
    _close(A.functional.jvp(f, x, u), TF.jvp(tf, tx, tu))


@pytest.mark.parametrize("k", [0, 2])
def test_hessian_hvp_vhp_match_torch(k):
    f, tf, shapes = FUNCS[k]
    if k == 2:
        f, tf = (lambda x, y: _f2(x, y).sum()), (lambda x, y: _f2(x, y).sum())
    x, tx = _inputs(shapes)
    _close(A.functional.hessian(f, x), TF.hessian(tf, tx))
    u, tu = _inputs(shapes, seed=3)
    _close(A.functional.hvp(f, x, u), TF.hvp(tf, tx, tu))
    _close(A.functional.vhp(f, x, u), TF.vhp(tf, tx, tu))


def test_functional_strict_create_graph_and_errors():
    x = tinyml.tensor([1.0, 2.0], dtype=tinyml.float64)
    jac = A.functional.jacobian(lambda a, b: a * 2, (x, x.clone()))
    assert np.array_equal(jac[1].numpy(), np.zeros((2, 2)))  # unused input: zeros
    with pytest.raises(RuntimeError, match="independent of input 1"):
        A.functional.jacobian(lambda a, b: a * 2, (x, x.clone()), strict=True)
    with pytest.raises(NotImplementedError, match="vectorize=True"):
        A.functional.jacobian(lambda a: a, x, vectorize=True)
    with pytest.raises(RuntimeError, match="v can only be None"):
        A.functional.vjp(lambda a: a * 2, x)
    w = tinyml.tensor([0.5, -1.0], dtype=tinyml.float64, requires_grad=True)
    g = A.functional.vjp(lambda a: (a * w).sum() ** 2, x, create_graph=True)[1]
    assert g.requires_grad and not A.functional.vjp(lambda a: (a * w).sum() ** 2, x)[1].requires_grad
    g.sum().backward()  # g = 2 (x.w) w;  d/dw of sum(g) = 2 x sum(w) + 2 (x.w)
    xn, wn = x.numpy(), w.detach().numpy()
    np.testing.assert_allclose(w.grad.numpy(), 2 * xn * wn.sum() + 2 * (xn @ wn))


def _mlp(seed=0):
    tinyml.manual_seed(seed)
    return tinyml.nn.Sequential(tinyml.nn.Linear(8, 32), tinyml.nn.GELU(), tinyml.nn.Dropout(0.3),
                                tinyml.nn.Linear(32, 8))


def _grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_checkpoint_same_outputs_and_gradients_with_dropout(input_requires_grad):
    model = _mlp()
    x = tinyml.randn(4, 8, requires_grad=input_requires_grad)
    tinyml.manual_seed(7)
    ref = model(model(x))
    ref.square().sum().backward()
    ref_grads, ref_x = _grads(model), x.grad.numpy().copy() if input_requires_grad else None
    model.zero_grad()
    x.grad = None
    tinyml.manual_seed(7)
    out = checkpoint(model, checkpoint(model, x, use_reentrant=False), use_reentrant=False)
    tinyml.randn(5)  # moving the global RNG between forward and backward must not change the masks
    out.square().sum().backward()
    _close(out, ref, 0)
    for a, b in zip(_grads(model), ref_grads):
        np.testing.assert_array_equal(a, b)
    if input_requires_grad:
        np.testing.assert_array_equal(x.grad.numpy(), ref_x)


def test_checkpoint_autograd_grad_and_double_backward():
    x = tinyml.tensor([0.3, -1.2, 2.0], dtype=tinyml.float64, requires_grad=True)
    y = checkpoint(lambda t: (t.sin() * t).sum(), x, use_reentrant=False)
    (g,) = A.grad(y, x, create_graph=True)
    tx = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    (tg,) = torch.autograd.grad((tx.sin() * tx).sum(), tx, create_graph=True)
    _close(g, tg)
    g.sum().backward()
    tg.sum().backward()
    _close(x.grad, tx.grad)


def test_checkpoint_holds_less_memory_after_forward():
    tinyml.manual_seed(0)
    blocks = [tinyml.nn.Sequential(tinyml.nn.Linear(64, 256), tinyml.nn.GELU(), tinyml.nn.Linear(256, 64))
              for _ in range(4)]
    x = tinyml.randn(256, 64, requires_grad=True)

    def forward(use_ckpt):
        h = x
        for b in blocks:
            h = checkpoint(b, h, use_reentrant=False) if use_ckpt else b(h)
        return h.sum()

    held = {}
    for use_ckpt in (False, True):
        with tinyml.memory.track() as m:
            loss = forward(use_ckpt)
        held[use_ckpt] = m.host_bytes_retained
        loss.backward()
    # each block saves its (256, 256) GELU input and output plus its input: ~0.75 MB; only block outputs stay
    assert held[True] < held[False] / 3, held


def test_detect_anomaly_names_op_and_forward_stack():
    x = tinyml.tensor([0.0, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with A.detect_anomaly():
            y = (x / x).sum()  # 0/0: d/d(divisor) = -x / x^2 is the first NaN
            with pytest.raises(RuntimeError, match=r"Function 'DivBackward' returned nan values in its 1th "
                                                   r"output") as err:
                y.backward()
    assert "test_autograd_utils.py" in str(err.value) and "y = (x / x).sum()" in str(err.value)
    x.grad = None
    (x / x).sum().backward()  # off again: NaN propagates silently, as in torch
    assert np.isnan(x.grad.numpy()[0])
    assert A.Function.__dict__["apply"].__func__.__name__ == "apply"


def test_checkpoint_gpt_blocks_same_loss_and_gradients():
    from tinyml.models.transformer.gpt import GPT, GPTConfig

    cfg = GPTConfig(n_layer=2, n_embd=32, n_head=4, block_size=16, vocab_size=50, dropout=0.1)
    grads = []
    for use_ckpt in (False, True):
        tinyml.manual_seed(0)
        model = GPT(cfg)
        if use_ckpt:
            for blk in model.transformer.h:
                blk.forward = lambda x, *a, _f=blk.forward: checkpoint(_f, x, *a, use_reentrant=False)
        idx = tinyml.randint(0, 50, (2, 16), generator=tinyml.Generator().manual_seed(1))
        tinyml.manual_seed(3)
        _, loss = model(idx, idx)
        loss.backward()
        grads.append([loss.item()] + [p.grad.numpy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_saved_bytes_does_not_recompute_a_checkpoint_and_counts_less():
    """memory.saved_bytes walks a checkpointed graph without running the recomputation, and the
    checkpointed segment holds nothing until backward."""
    import tinyml.memory
    from tinyml.utils.checkpoint import checkpoint

    calls = []

    def block(x):
        calls.append(1)
        return (x.tanh() * 2).sigmoid().exp()

    x = tinyml.randn(64, 64, requires_grad=True)
    plain = tinyml.memory.saved_bytes(block(x).sum())
    y = checkpoint(block, x).sum()
    assert len(calls) == 2
    assert tinyml.memory.saved_bytes(y) < plain and len(calls) == 2  # nothing was recomputed
    y.backward()
    assert len(calls) == 3 and x.grad is not None
