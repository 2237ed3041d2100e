"""tinyml.compile skips the calls of numpy's pure view kernels (view, expand, permute) whose results
every reader rebuilds itself (tinyml/_capture_program.py, _PURE_VIEWS): the replay stays bit-identical
to eager mode and its code calls no view kernel."""
from __future__ import annotations

import numpy as np
from compile_helpers import _arrays, _same, _train_step, _twins

import tinyml
from tinyml import nn

_MOVEMENT = "tinyml.backends.reference.movement"


def _view_calls(compiled) -> tuple[list[str], list[str]]:
    """The replay's lines that call a view kernel: (results discarded, results kept in a slot). A
    view of a parameter (not of a step's array) is a slot of its own and keeps its call."""
    entry = next(e for e in compiled._entries.values() if e.program is not None)
    names = [k for k, v in entry.program.run.__globals__.items()
             if k[:1] == "k" and getattr(v, "__module__", None) == _MOVEMENT]
    lines = [line.strip() for line in compiled.code().splitlines()]
    calls = [line for line in lines for k in names if f"{k}(" in line]
    return [c for c in calls if "=" not in c], [c for c in calls if "=" in c]


def test_training_step_with_views_replays_without_view_calls():
    def build():
        w = nn.Parameter(tinyml.randn(4, 6))
        opt = tinyml.optim.Adam([w], lr=1e-2)

        def loss_fn(_, x):
            h = (x.reshape(2, 3, 4) @ w.T.reshape(4, 6)).permute(1, 0, 2)  # (3, 2, 6)
            h = h.reshape(3, 12) + w.reshape(1, 24)[:, :12].expand(3, 12)
            return (h * h).sum()
        return w, opt, _train_step(w, opt, loss_fn)

    w1, o1, s1, w2, o2, s2 = _twins(build)
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = tinyml.tensor(rng.standard_normal((6, 4)).astype(np.float32))
        assert _same(_arrays(s1(x)), _arrays(s2(x)))
    assert "replaying" in s2.explain(), s2.explain()
    assert _same(_arrays(w1), _arrays(w2)) and _same(w1.grad.numpy(), w2.grad.numpy())
    discarded, kept = _view_calls(s2)
    assert discarded == [] and len(kept) == 3, (discarded, kept)  # w.T, w.T.reshape, w.reshape(1, 24)


def test_returned_view_is_rebuilt():
    @tinyml.compile
    def f(x):
        with tinyml.no_grad():
            return (x * 2).reshape(3, 4).T  # a view of a kernel's output, handed out

    rng = np.random.default_rng(4)
    for _ in range(4):
        a = rng.standard_normal(12).astype(np.float32)
        out = f(tinyml.tensor(a))
        assert out.shape == (4, 3) and np.array_equal(out.numpy(), (a * 2).reshape(3, 4).T)
    assert "replaying" in f.explain() and _view_calls(f) == ([], [])
