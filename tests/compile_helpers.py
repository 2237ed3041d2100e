"""Shared helpers of tests/test_compile.py and tests/test_compile_guards.py: twin models (one
eager, one through tinyml.compile) built from one seed, and bit-for-bit comparisons."""
from __future__ import annotations

import numpy as np

import tinyml
import tinyml.nn.functional as F
from tinyml import nn


def _same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _arrays(t):
    return t.detach().numpy()


def _assert_same_state(m1, m2, o1=None, o2=None):
    for (name, p), q in zip(m1.named_parameters(), m2.parameters()):
        assert _same(_arrays(p), _arrays(q)), name
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert _same(p.grad.numpy(), q.grad.numpy()), name
    if o1 is not None:
        for p, q in zip(m1.parameters(), m2.parameters()):
            s1, s2 = o1.state[p], o2.state[q]
            assert s1.keys() == s2.keys()
            for k in s1:
                assert _same(np.asarray(s1[k].numpy()), np.asarray(s2[k].numpy())), k


def _twins(build):
    """Two identical (model, optimizer, step) triples from one seed; the second step compiled."""
    out = []
    for _ in range(2):
        tinyml.manual_seed(0)
        out.append(build())
    (m1, o1, s1), (m2, o2, s2) = out
    return m1, o1, s1, m2, o2, tinyml.compile(s2)


def _train_step(model, opt, loss_fn):
    def step(*batch):
        opt.zero_grad()
        loss = loss_fn(model, *batch)
        loss.backward()
        opt.step()
        return loss
    return step


def _gpt():
    from tinyml.models import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16, activation="gelu_new"))
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    return model, opt, _train_step(model, opt, lambda m, x, y: m(x, y)[1])


def _mlp():
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    opt = tinyml.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, _train_step(model, opt, lambda m, x, y: F.cross_entropy(m(x), y))


def _batches(n, rows=5, seed=0):
    rng = np.random.default_rng(seed)
    return [(tinyml.tensor(rng.standard_normal((rows, 6)).astype(np.float32)),
             tinyml.tensor(rng.integers(0, 3, rows))) for _ in range(n)]
