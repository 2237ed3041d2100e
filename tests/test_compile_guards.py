"""tinyml.compile's guards (new shapes, parameters, kernel registry, train/eval modes) record
again, and what cannot be captured (dropout, .item() results, live graphs, hand-written schedules,
wrapped optimizer steps, overlapping input views) runs eagerly with the reason said once; an error
inside the function propagates. tinyml/compile.py, docs/compile.md."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from compile_helpers import _arrays, _assert_same_state, _batches, _mlp, _same, _train_step, _twins

import tinyml
import tinyml.nn.functional as F
from tinyml import backends, nn


def test_new_input_shape_records_again():
    m1, o1, s1, m2, o2, s2 = _twins(_mlp)
    for rows in (5, 5, 5, 7, 7, 7, 5):
        x, y = _batches(1, rows, seed=rows)[0]
        assert _same(_arrays(s1(x, y)), _arrays(s2(x, y)))
    text = s2.explain()
    assert text.count("replaying") == 2 and "signature 1" in text, text
    _assert_same_state(m1, m2, o1, o2)


def test_dropout_runs_eagerly_and_says_why():
    def build():
        model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 3))
        opt = tinyml.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, _train_step(model, opt, lambda m, x, y: F.cross_entropy(m(x), y))

    m1, o1, s1, m2, o2, s2 = _twins(build)
    losses1, losses2 = [], []
    tinyml.manual_seed(5)
    for x, y in _batches(4):
        losses1.append(_arrays(s1(x, y)))
    tinyml.manual_seed(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, y in _batches(4):
            losses2.append(_arrays(s2(x, y)))
    said = [w for w in caught if "tinyml.compile" in str(w.message)]
    assert len(said) == 1 and "different values in two calls" in str(said[0].message)
    assert "eager, because" in s2.explain() and "random mask" in s2.explain()
    assert all(_same(a, b) for a, b in zip(losses1, losses2))
    _assert_same_state(m1, m2, o1, o2)


def test_item_result_and_live_graph_are_refused():
    tinyml.manual_seed(0)
    model = nn.Linear(6, 3)
    item = tinyml.compile(lambda x: model(x).sum().item())
    graph = tinyml.compile(lambda x: model(x).sum())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, _ in _batches(3):
            assert item(x) == model(x).sum().item()
            out = graph(x)
            out.backward()  # eager: the graph is there
    assert "different structure or different Python values" in item.explain()
    assert "still part of an autograd graph" in graph.explain()
    assert len([w for w in caught if "tinyml.compile" in str(w.message)]) == 2


def test_guards_parameters_and_kernel_registry():
    m1, o1, s1, m2, o2, s2 = _twins(_mlp)
    data = _batches(9)
    for x, y in data[:4]:
        s1(x, y), s2(x, y)
    # a parameter given a new array: the replay would write the old one, so the step records again
    for m in (m1, m2):
        m[0].weight._data = m[0].weight._data.copy()
    for x, y in data[4:6]:
        assert _same(_arrays(s1(x, y)), _arrays(s2(x, y)))
    assert "0 replays so far" in s2.explain()  # recorded twice again, not replayed
    # a user kernel registered after capture is used from then on (the dispatch table changed)
    calls = []

    @backends.register("tanh", "cpu")
    def counting_tanh(x):
        calls.append(1)
        return NotImplemented  # decline: the built-in kernel runs
    try:
        for x, y in data[6:]:
            assert _same(_arrays(s1(x, y)), _arrays(s2(x, y)))
    finally:
        backends.unregister("tanh", "cpu")
    assert len(calls) >= 3 + 2  # every eager call, and both recordings of the compiled step
    _assert_same_state(m1, m2, o1, o2)


def test_hand_written_schedule_inside_is_refused_outside_is_replayed():
    m1, o1, s1, m2, o2, s2 = _twins(_mlp)
    group = o1.param_groups[0]
    inner = tinyml.compile(lambda x, y: (s1(x, y), group.update(lr=group["lr"] * 0.9)))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for x, y in _batches(4):
            inner(x, y)
    assert "hand-written schedule" in inner.explain()
    for k, (x, y) in enumerate(_batches(5)):  # the schedule outside the compiled step: replayed
        o2.param_groups[0]["lr"] = 0.1 / (k + 1)
        s2(x, y)
    assert "3 replays" in s2.explain()


def test_optimizer_step_wrapped_per_instance_is_refused():
    model, opt, step = _mlp()
    opt.step = lambda *a, **k: type(opt).step(opt, *a, **k)  # e.g. a monitor counting steps
    compiled = tinyml.compile(step)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for x, y in _batches(3):
            compiled(x, y)
    assert "replaced on the instance" in compiled.explain()


def test_train_eval_switch_records_again():
    tinyml.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4))
    twin = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4))
    twin.load_state_dict(model.state_dict())
    forward = tinyml.compile(lambda x: model(x))
    states = []
    for training in (True, True, True, False, False, False, True):
        model.train(training), twin.train(training)
        for x, _ in _batches(1, seed=int(training)):
            with tinyml.no_grad():
                assert _same(forward(x).numpy(), twin(x).numpy())
        states.append(forward.explain().split(": ")[1].split(" ")[0])
    # eval after train: the mode guard fails, two calls record again, the third replays; then back
    assert states == ["recording", "replaying", "replaying"] * 2 + ["recording"]
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert _same(np.asarray(a.numpy()), np.asarray(b.numpy())), name


def test_error_inside_fn_propagates_and_hooks_are_restored():
    from tinyml import autograd
    from tinyml.optim import SGD

    wrappers, step_fn, zero = list(backends._wrappers), SGD.__dict__["step"], autograd.zero_grad

    @tinyml.compile
    def bad(x):
        x = x * 2  # a kernel ran before the error
        raise ValueError(f"bad input of shape {tuple(x.shape)}")  # x: (2,) after x * 2 too

    with pytest.raises(ValueError, match=r"bad input of shape \(2,\)"):
        bad(tinyml.ones(2))
    assert backends._wrappers == wrappers and SGD.__dict__["step"] is step_fn and autograd.zero_grad is zero
    with pytest.raises(TypeError, match="expects a callable"):
        tinyml.compile(3)


def test_inputs_sliced_from_one_array():
    data = np.arange(40, dtype=np.float32)

    @tinyml.compile
    def f(x, y):
        return (x.reshape(2, 4).T * 2).sum(dim=1) + y.flip(0)[:2].sum()

    for start in (0, 0, 0, 8, 16, 3):  # the first calls see the same slice: nothing may be taken as fixed
        x = tinyml.Tensor._make(data[start:start + 8])
        y = tinyml.Tensor._make(data[start + 1:start + 9])
        want = (data[start:start + 8].reshape(2, 4).T * 2).sum(1) + data[start + 1:start + 9][::-1][:2].sum()
        assert _same(f(x, y).numpy(), want.astype(np.float32))
    assert "replaying" in f.explain(), f.explain()
