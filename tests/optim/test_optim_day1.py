"""RMSprop, Adagrad, Adamax, NAdam, RAdam, Lion and the new schedulers against torch.optim.

N steps on the same parameters and gradients as torch, equal to 1e-6 (float32) / 1e-12 (float64);
Lion (no torch peer) against the paper's update written in numpy.
"""
import copy

import numpy as np
import pytest
import torch

import tinyml
from tinyml import optim

STEPS = 6

CASES = [
    ("RMSprop", {}),
    ("RMSprop", dict(alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.8, centered=True)),
    ("RMSprop", dict(momentum=0.5, maximize=True)),
    ("Adagrad", {}),
    ("Adagrad", dict(lr_decay=0.1, initial_accumulator_value=0.3, weight_decay=0.05, eps=1e-8)),
    ("Adamax", {}),
    ("Adamax", dict(betas=(0.8, 0.95), weight_decay=0.1, maximize=True)),
    ("NAdam", {}),
    ("NAdam", dict(weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", {}),
    ("RAdam", dict(betas=(0.9, 0.9), weight_decay=0.1)),  # beta2=0.9 reaches rho_t > 5 within the steps
    ("RAdam", dict(betas=(0.9, 0.9), weight_decay=0.1, decoupled_weight_decay=True)),
]


def _grads(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in [(3, 4), (5,)]] for _ in range(STEPS)]


def _run_pair(name, kwargs, dtype):
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (5,)]]
    ours = [tinyml.tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    kw = dict(kwargs, lr=0.05)
    opt_ours = getattr(optim, name)(ours, **kw)
    opt_theirs = getattr(torch.optim, name)(theirs, **kw)
    for grads in _grads(dtype):
        for p, q, g in zip(ours, theirs, grads):
            p.grad = tinyml.tensor(g)
            q.grad = torch.tensor(g)
        opt_ours.step()
        opt_theirs.step()
    return ours, theirs, opt_ours, opt_theirs


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-12)])
@pytest.mark.parametrize("name,kwargs", CASES)
def test_matches_torch(name, kwargs, dtype, tol):
    ours, theirs, opt_ours, opt_theirs = _run_pair(name, kwargs, dtype)
    for p, q in zip(ours, theirs):
        assert p.dtype == tinyml.tensor(np.zeros(1, dtype)).dtype
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=tol, atol=tol)
    # the state has torch's names and values
    for i, p in enumerate(ours):
        s_ours, s_theirs = opt_ours.state[p], opt_theirs.state[theirs[i]]
        assert set(s_ours) == set(s_theirs)
        for key, value in s_theirs.items():
            np.testing.assert_allclose(np.asarray(s_ours[key].numpy(), np.float64),
                                       value.detach().numpy().astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("name,kwargs", [c for c in CASES if not c[1]] + [("Lion", {})])
def test_state_dict_round_trip(name, kwargs):
    """Three steps, save, load into a fresh optimizer on fresh params, three more == six straight."""
    grads = _grads(np.float64)
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s) for s in [(3, 4), (5,)]]

    def fresh(values):
        ps = [tinyml.tensor(v.copy(), requires_grad=True) for v in values]
        return ps, getattr(optim, name)(ps, lr=0.05)

    def steps(ps, opt, gs):
        for g in gs:
            for p, a in zip(ps, g):
                p.grad = tinyml.tensor(a)
            opt.step()

    straight, opt = fresh(init)
    steps(straight, opt, grads)
    first, opt1 = fresh(init)
    steps(first, opt1, grads[:3])
    saved = copy.deepcopy(opt1.state_dict())
    second, opt2 = fresh([p.detach().numpy() for p in first])
    opt2.load_state_dict(saved)
    steps(second, opt2, grads[3:])
    for a, b in zip(straight, second):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert sorted(saved["state"]) == [0, 1]


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_lion_matches_paper_update(wd):
    """Algorithm 2 of Chen et al. (2023), written in numpy."""
    lr, b1, b2 = 0.01, 0.9, 0.99
    grads = _grads(np.float64)
    rng = np.random.default_rng(1)
    ref = [rng.standard_normal(s) for s in [(3, 4), (5,)]]
    ps = [tinyml.tensor(v.copy(), requires_grad=True) for v in ref]
    opt = optim.Lion(ps, lr=lr, betas=(b1, b2), weight_decay=wd)
    m = [np.zeros_like(v) for v in ref]
    for g in grads:
        for p, a in zip(ps, g):
            p.grad = tinyml.tensor(a)
        opt.step()
        for i, a in enumerate(g):
            c = b1 * m[i] + (1 - b1) * a
            ref[i] = ref[i] - lr * (np.sign(c) + wd * ref[i])
            m[i] = b2 * m[i] + (1 - b2) * a
    for p, r in zip(ps, ref):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-12, atol=1e-12)


def test_invalid_hyperparameters_name_the_value():
    p = [tinyml.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.RMSprop(p, lr=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.5"):
        optim.NAdam(p, betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="Invalid lr_decay value: -0.1"):
        optim.Adagrad(p, lr_decay=-0.1)


def test_add_param_group_gets_defaults_and_steps():
    a = tinyml.ones(2, requires_grad=True)
    b = tinyml.ones(2, requires_grad=True)
    opt = optim.RMSprop([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["alpha"] == 0.99 and opt.param_groups[1]["lr"] == 0.01
    a.grad, b.grad = tinyml.ones(2), tinyml.ones(2)
    opt.step()
    assert a.detach().numpy()[0] < b.detach().numpy()[0] < 1.0
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def _lr_sequence(make_sched, module, metrics=None, steps=25, groups=1):
    params = [module.zeros(1, requires_grad=True) for _ in range(groups)]
    opt = (optim.SGD if module is tinyml else torch.optim.SGD)([{"params": [p]} for p in params], lr=0.1,
                                                                momentum=0.9)
    sched = make_sched(module, opt)
    out = []
    for i in range(steps):
        opt.step()
        sched.step(metrics[i]) if metrics is not None else sched.step()
        out.append([g["lr"] for g in opt.param_groups] + [g.get("momentum", 0) for g in opt.param_groups])
    return out


def _sched(name, **kw):
    def make(module, opt):
        ls = optim.lr_scheduler if module is tinyml else torch.optim.lr_scheduler
        return getattr(ls, name)(opt, **kw)
    return make


SCHEDULES = [
    ("CosineAnnealingWarmRestarts", dict(T_0=5)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.01)),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.9)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1 / (1 + e))),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=26)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=26, anneal_strategy="linear", three_phase=True)),
]


@pytest.mark.parametrize("name,kw", SCHEDULES, ids=lambda v: v if isinstance(v, str) else "")
def test_schedule_matches_torch(name, kw):
    np.testing.assert_allclose(_lr_sequence(_sched(name, **kw), tinyml),
                               _lr_sequence(_sched(name, **kw), torch), rtol=1e-12, atol=1e-15)


def test_sequential_lr_matches_torch():
    def make(module, opt):
        ls = optim.lr_scheduler if module is tinyml else torch.optim.lr_scheduler
        return ls.SequentialLR(opt, [ls.LinearLR(opt, 0.1, total_iters=4),
                                     ls.CosineAnnealingWarmRestarts(opt, T_0=4)], milestones=[5])
    np.testing.assert_allclose(_lr_sequence(make, tinyml), _lr_sequence(make, torch), rtol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", patience=2, cooldown=2, factor=0.5, min_lr=0.02),
                                dict(patience=1, threshold_mode="abs", threshold=0.5)])
def test_reduce_lr_on_plateau_matches_torch(kw):
    rng = np.random.default_rng(0)
    metrics = list(np.round(rng.uniform(0, 3, 40), 1))  # plateaus and jumps in both directions
    ours = _lr_sequence(_sched("ReduceLROnPlateau", **kw), tinyml, metrics, steps=40)
    theirs = _lr_sequence(_sched("ReduceLROnPlateau", **kw), torch, metrics, steps=40)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len({row[0] for row in ours}) > 1  # the lr did drop


def test_reduce_lr_on_plateau_errors_and_state():
    opt = optim.SGD([tinyml.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="'avg' is unknown"):
        optim.lr_scheduler.ReduceLROnPlateau(opt, mode="avg")
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    sched.step(1.0)
    sched.step(2.0)
    state = sched.state_dict()
    assert state["best"] == 1.0 and "optimizer" not in state
    assert sched.get_last_lr() == [pytest.approx(0.01)]
