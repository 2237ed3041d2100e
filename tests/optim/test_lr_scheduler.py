"""Schedulers against torch.optim.lr_scheduler: the same lr sequence, float for float."""
import math

import pytest
import torch

import tinyml
from tinyml import nn
from tinyml.optim import lr_scheduler as tm_sched

th_sched = torch.optim.lr_scheduler


def _opts(opt="SGD", **kw):
    a, b = nn.Parameter(tinyml.zeros(2)), nn.Parameter(tinyml.zeros(3))
    c, d = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    kw = kw or ({"lr": 0.1, "momentum": 0.9} if opt == "SGD" else {"lr": 0.1})
    tm = getattr(tinyml.optim, opt)([{"params": [a]}, {"params": [b], "lr": 0.02}], **kw)
    th = getattr(torch.optim, opt)([{"params": [c]}, {"params": [d], "lr": 0.02}], **kw)
    return tm, th


def _sequence(opt, sched, n):
    lrs = [list(sched.get_last_lr())]
    for _ in range(n):
        opt.step()
        sched.step()
        lrs.append(list(sched.get_last_lr()))
    return lrs


CASES = {
    "lambda": lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e + 0.01 * e),
    "step": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "exponential": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=1e-3),
    "linear": lambda m, o: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=6),
    "constant": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "sequential": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=3),
                                                  m.CosineAnnealingLR(o, T_max=8)], milestones=[3]),
    "onecycle": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=15),
    "onecycle_linear_3phase": lambda m, o: m.OneCycleLR(o, max_lr=0.3, total_steps=15, anneal_strategy="linear",
                                                        three_phase=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lr_sequence_matches_torch(name):
    n = 14 if name.startswith("onecycle") else 20  # cosine runs past T_max: the restart branch is covered
    tm_opt, th_opt = _opts()
    tm, th = CASES[name](tm_sched, tm_opt), CASES[name](th_sched, th_opt)
    got, want = _sequence(tm_opt, tm, n), _sequence(th_opt, th, n)
    for step, (g, w) in enumerate(zip(got, want)):
        assert g == pytest.approx(w, rel=1e-12, abs=1e-15), f"step {step}: {g} vs torch {w}"
    if name.startswith("onecycle"):  # momentum cycles too
        assert tm_opt.param_groups[0]["momentum"] == pytest.approx(th_opt.param_groups[0]["momentum"])


def test_onecycle_cycles_adam_beta1_like_torch():
    tm_opt, th_opt = _opts("Adam")
    tm = tm_sched.OneCycleLR(tm_opt, max_lr=0.2, total_steps=10)
    th = th_sched.OneCycleLR(th_opt, max_lr=0.2, total_steps=10)
    for _ in range(6):
        tm_opt.step(), th_opt.step(), tm.step(), th.step()
        assert tm_opt.param_groups[1]["betas"] == pytest.approx(th_opt.param_groups[1]["betas"])
        assert tm.get_last_lr() == pytest.approx(th.get_last_lr())


def test_state_dict_resumes_the_sequence():
    opt, _ = _opts()
    sched = tm_sched.CosineAnnealingLR(opt, T_max=10)
    _sequence(opt, sched, 4)
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
    rest = _sequence(opt, sched, 5)
    opt2, _ = _opts()
    sched2 = tm_sched.CosineAnnealingLR(opt2, T_max=10)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert _sequence(opt2, sched2, 5) == rest
    assert "optimizer" not in saved_sched


def test_sequential_state_dict_holds_the_children():
    opt, _ = _opts()
    s = tm_sched.SequentialLR(opt, [tm_sched.ConstantLR(opt, 0.5, 2), tm_sched.ExponentialLR(opt, 0.9)], [2])
    state = s.state_dict()
    assert len(state["_schedulers"]) == 2 and "optimizer" not in state["_schedulers"][0]


def test_cosine_schedule_with_warmup():
    opt, _ = _opts()
    sched = tm_sched.get_cosine_schedule_with_warmup(opt, warmup_steps=4, total_steps=12, min_lr_ratio=0.1)
    lrs = [lr[0] for lr in _sequence(opt, sched, 14)]
    assert lrs[0] == 0.0
    assert lrs[2] == pytest.approx(0.05)  # linear warmup: 2/4 of base
    assert lrs[4] == pytest.approx(0.1)  # peak at the end of warmup
    assert lrs[8] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))  # half way through the cosine
    assert lrs[12] == pytest.approx(0.01) and lrs[13] == pytest.approx(0.01)  # floor, held after the end
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    expected = [0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 4) / 8))) for s in range(4, 13)]
    assert lrs[4:13] == pytest.approx(expected)
    with pytest.raises(ValueError, match="warmup_steps=5, total_steps=3"):
        tm_sched.get_cosine_schedule_with_warmup(opt, 5, 3)


def test_scheduler_errors():
    opt, _ = _opts()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        tm_sched.StepLR(object(), 3)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        tm_sched.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        tm_sched.LambdaLR(opt, [lambda e: 1.0])
    with pytest.raises(ValueError, match="number of milestones"):
        tm_sched.SequentialLR(opt, [tm_sched.StepLR(opt, 2)], milestones=[3])
    sched = tm_sched.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    opt.step(), sched.step(), sched.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        sched.step()
