"""SGD, Adam and AdamW against torch.optim: same parameters, same closed-loop gradients, 5 steps, on
reference and cpu kernels and on each device; the optimizer-step kernels (adam_step,
adam_amsgrad_step, sgd_step) of C++ (csrc/optim.cpp) also called directly against the reference."""
import numpy as np
import pytest
import torch
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C, rand

import tinyml
from tinyml import nn
from tinyml.testing import assert_close

SHAPES = [(4, 3), (5,), (2, 3, 2), ()]


def _grad(p: np.ndarray, step: int) -> np.ndarray:
    """A gradient that depends on the current parameters, so any divergence compounds."""
    return np.asarray(2.0 * (p - 0.3) + 0.5 * p ** 3 + 0.1 * np.cos(p * (step + 1)), dtype=p.dtype)


def _run(tm_cls, th_cls, kwargs, steps=5, dtype="float32", skip_grad=None):
    rng = np.random.default_rng(0)
    init = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in SHAPES]
    tm = [nn.Parameter(tinyml.tensor(a)) for a in init]
    th = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt_tm, opt_th = tm_cls(tm, **kwargs), th_cls(th, **kwargs)
    for step in range(steps):
        for i, (a, b) in enumerate(zip(tm, th)):
            if skip_grad is not None and (i, step) in skip_grad:
                a.grad, b.grad = None, None
                continue
            g = _grad(b.detach().numpy(), step)
            a.grad = tinyml.tensor(_grad(a.detach().numpy(), step))
            b.grad = torch.tensor(g)
        opt_tm.step()
        opt_th.step()
    return tm, th, opt_tm, opt_th


def _assert_params(tm, th, rtol=1e-5, atol=1e-6):
    for i, (a, b) in enumerate(zip(tm, th)):
        assert_close(a, b, rtol=rtol, atol=atol, msg=f"param {i}:")


SGD_CONFIGS = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
               dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), dict(lr=0.02, weight_decay=0.1),
               dict(lr=0.05, momentum=0.5, maximize=True)]


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_sgd_matches_torch(cfg, kernels):
    tm, th, opt_tm, opt_th = _run(tinyml.optim.SGD, torch.optim.SGD, cfg)
    _assert_params(tm, th)
    if cfg.get("momentum"):
        for i, (a, b) in enumerate(zip(tm, th)):
            assert_close(opt_tm.state[a]["momentum_buffer"], opt_th.state[b]["momentum_buffer"],
                         msg=f"buf {i}:")
    else:
        assert len(opt_tm.state) == 0


ADAM_CONFIGS = [dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.1), dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6),
                dict(lr=1e-2, amsgrad=True), dict(lr=1e-2, maximize=True)]


@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_adam_matches_torch(cfg, kernels):
    tm, th, opt_tm, opt_th = _run(tinyml.optim.Adam, torch.optim.Adam, cfg)
    _assert_params(tm, th)
    for a, b in zip(tm, th):
        assert_close(opt_tm.state[a]["exp_avg"], opt_th.state[b]["exp_avg"])
        assert_close(opt_tm.state[a]["exp_avg_sq"], opt_th.state[b]["exp_avg_sq"])
        assert opt_tm.state[a]["step"].item() == opt_th.state[b]["step"].item() == 5


@pytest.mark.parametrize("cfg", [dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.3), dict(lr=5e-3, amsgrad=True)],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_adamw_five_steps_match_torch_to_1e5(cfg, kernels):
    tm, th, _, _ = _run(tinyml.optim.AdamW, torch.optim.AdamW, cfg)
    _assert_params(tm, th, rtol=1e-5, atol=1e-5)


def test_adamw_float64_matches_tightly():
    tm, th, _, _ = _run(tinyml.optim.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1),
                        dtype="float64")
    _assert_params(tm, th, rtol=1e-12, atol=1e-12)


def test_params_without_grad_are_skipped_and_step_counts_per_param():
    # param 1 misses steps 0 and 2: its own step count (and bias correction) lags, as in torch
    skip = {(1, 0), (1, 2), (3, 4)}
    tm, th, opt_tm, opt_th = _run(tinyml.optim.Adam, torch.optim.Adam, dict(lr=1e-2), skip_grad=skip)
    _assert_params(tm, th)
    assert opt_tm.state[tm[1]]["step"].item() == 3
    tm, th, _, _ = _run(tinyml.optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9), skip_grad=skip)
    _assert_params(tm, th)


def test_param_groups_with_own_hyperparameters_match_torch():
    rng = np.random.default_rng(1)
    init = [rng.standard_normal((3, 2)).astype("float32") for _ in range(3)]
    tm = [nn.Parameter(tinyml.tensor(a)) for a in init]
    th = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    def groups(ps):
        return [{"params": ps[:2], "weight_decay": 0.0}, {"params": ps[2:], "lr": 0.05}]
    opt_tm, opt_th = tinyml.optim.AdamW(groups(tm), lr=1e-2), torch.optim.AdamW(groups(th), lr=1e-2)
    assert opt_tm.param_groups[1]["weight_decay"] == 0.01 and opt_tm.param_groups[0]["lr"] == 1e-2
    for step in range(4):
        for a, b in zip(tm, th):
            a.grad = tinyml.tensor(_grad(a.detach().numpy(), step))
            b.grad = torch.tensor(_grad(b.detach().numpy(), step))
        opt_tm.step()
        opt_th.step()
    _assert_params(tm, th)


def test_end_to_end_model_training_matches_torch():
    """Same tiny regression model, same data: parameters after 5 AdamW steps agree."""
    rng = np.random.default_rng(2)
    w1, b1 = rng.standard_normal((6, 3)).astype("float32") * 0.5, np.zeros(6, "float32")
    w2 = rng.standard_normal((1, 6)).astype("float32") * 0.5
    x, y = rng.standard_normal((16, 3)).astype("float32"), rng.standard_normal((16, 1)).astype("float32")
    tm = [nn.Parameter(tinyml.tensor(a)) for a in (w1, b1, w2)]
    th = [torch.nn.Parameter(torch.tensor(a)) for a in (w1, b1, w2)]
    opt_tm, opt_th = tinyml.optim.AdamW(tm, lr=1e-2), torch.optim.AdamW(th, lr=1e-2)
    for _ in range(5):
        for lib, ps, opt, X, Y in ((tinyml, tm, opt_tm, tinyml.tensor(x), tinyml.tensor(y)),
                                   (torch, th, opt_th, torch.tensor(x), torch.tensor(y))):
            h = (X @ ps[0].T + ps[1]).tanh()
            loss = ((h @ ps[2].T - Y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    _assert_params(tm, th, rtol=1e-5, atol=1e-5)


def test_state_dict_is_torch_format_and_roundtrips():
    tm, th, opt_tm, opt_th = _run(tinyml.optim.AdamW, torch.optim.AdamW, dict(lr=1e-2), steps=2)
    sd_tm, sd_th = opt_tm.state_dict(), opt_th.state_dict()
    assert sorted(sd_tm["state"]) == sorted(sd_th["state"]) == [0, 1, 2, 3]
    assert set(sd_tm["state"][0]) == set(sd_th["state"][0])
    assert sd_tm["param_groups"][0]["params"] == sd_th["param_groups"][0]["params"]
    for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert sd_tm["param_groups"][0][k] == sd_th["param_groups"][0][k]
    # a fresh optimizer loaded from the state dict continues exactly as the original
    clones = [nn.Parameter(p.detach().clone()) for p in tm]
    opt2 = tinyml.optim.AdamW(clones, lr=0.5)
    opt2.load_state_dict(sd_tm)
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.param_groups[0]["params"][0] is clones[0]
    for step in range(3):
        for a, c in zip(tm, clones):
            a.grad = tinyml.tensor(_grad(a.detach().numpy(), step))
            c.grad = tinyml.tensor(_grad(c.detach().numpy(), step))
        opt_tm.step()
        opt2.step()
    for a, c in zip(tm, clones):
        assert_close(a, c, rtol=0, atol=0)


def test_load_state_dict_converted_from_torch_continues_like_torch():
    tm, th, opt_tm, opt_th = _run(tinyml.optim.Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.05),
                                  steps=2)
    sd = opt_th.state_dict()
    converted = {"state": {i: {k: tinyml.tensor(v.numpy()) for k, v in s.items()}
                           for i, s in sd["state"].items()},
                 "param_groups": sd["param_groups"]}
    fresh = [nn.Parameter(tinyml.tensor(b.detach().numpy())) for b in th]
    opt = tinyml.optim.Adam(fresh, lr=1.0)
    opt.load_state_dict(converted)
    for step in range(3):
        for a, b in zip(fresh, th):
            a.grad = tinyml.tensor(_grad(a.detach().numpy(), step))
            b.grad = torch.tensor(_grad(b.detach().numpy(), step))
        opt.step()
        opt_th.step()
    _assert_params(fresh, th)


def test_bfloat16_params_update_in_bfloat16():
    a = np.random.default_rng(3).standard_normal((8, 4)).astype("float32")
    p = nn.Parameter(tinyml.tensor(a, dtype=tinyml.bfloat16))
    q = torch.nn.Parameter(torch.tensor(a, dtype=torch.bfloat16))
    opt_tm, opt_th = tinyml.optim.AdamW([p], lr=1e-2), torch.optim.AdamW([q], lr=1e-2)
    for step in range(3):
        g = _grad(a, step)
        p.grad = tinyml.tensor(g, dtype=tinyml.bfloat16)
        q.grad = torch.tensor(g, dtype=torch.bfloat16)
        opt_tm.step()
        opt_th.step()
    assert p.dtype is tinyml.bfloat16 and opt_tm.state[p]["exp_avg"].dtype is tinyml.bfloat16
    assert_close(p, q, rtol=2e-2, atol=2e-2)


def test_zero_grad_and_version_bump():
    p = nn.Parameter(tinyml.randn(3))
    opt = tinyml.optim.SGD([p], lr=0.1)
    p.grad = tinyml.ones(3)
    v = p._version[0]
    opt.step()
    assert p._version[0] == v + 1  # the in-place write is visible to autograd's saved-tensor check
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and float(p.grad.abs().sum()) == 0.0
    opt.zero_grad()
    assert p.grad is None


def test_closure_is_called_and_its_loss_returned():
    p = nn.Parameter(tinyml.tensor([1.0, -2.0]))
    opt = tinyml.optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    assert_close(p, np.array([0.8, -1.6], dtype="float32"))


def test_optimizer_errors():
    p = nn.Parameter(tinyml.randn(2))
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        tinyml.optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        tinyml.optim.AdamW([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        tinyml.optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        tinyml.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        tinyml.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        tinyml.optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        tinyml.optim.SGD({p}, lr=0.1)
    opt = tinyml.optim.SGD([p], lr=0.1)
    with pytest.raises(RuntimeError, match=r"shape \(3,\).*shape \(2,\)"):
        p.grad = tinyml.ones(3)  # refused at assignment, as in PyTorch
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


@pytest.mark.parametrize("tm_cls,th_cls,cfg", [
    (tinyml.optim.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    (tinyml.optim.Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1, maximize=True)),
    (tinyml.optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01))],
    ids=["adamw", "adam", "sgd"])
def test_optimizers_on_each_device(tm_cls, th_cls, cfg, device):
    """The same five steps with parameters, gradients and state on `device` (cuda: the Triton kernels)."""
    rng = np.random.default_rng(4)
    init = [rng.standard_normal(s).astype("float32") for s in [(7, 5), (33,)]]
    tm = [nn.Parameter(tinyml.tensor(a, device=device)) for a in init]
    th = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt_tm, opt_th = tm_cls(tm, **cfg), th_cls(th, **cfg)
    for step in range(5):
        for a, b in zip(tm, th):
            g = _grad(b.detach().numpy(), step)
            a.grad = tinyml.tensor(_grad(a.detach().cpu().numpy(), step), device=device)
            b.grad = torch.tensor(g)
        opt_tm.step()
        opt_th.step()
    for a, b in zip(tm, th):
        assert a.device.type == device
        assert_close(a.detach().cpu(), b, rtol=1e-5, atol=1e-5)
    state = next(iter(opt_tm.state.values()))
    assert all(v.device.type == device for k, v in state.items() if k != "step")


def test_adam_amsgrad_matches_torch(device):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 3)).astype(np.float32)
    grads = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(3)]
    p = tinyml.nn.Parameter(tinyml.tensor(w0, device=device))
    q = torch.nn.Parameter(torch.tensor(w0))
    opt = tinyml.optim.Adam([p], lr=0.1, amsgrad=True, weight_decay=0.01)
    ref = torch.optim.Adam([q], lr=0.1, amsgrad=True, weight_decay=0.01)
    for g in grads:
        p.grad = tinyml.tensor(g, device=device)
        q.grad = torch.tensor(g)
        opt.step()
        ref.step()
    np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


# -- the C++ step kernels called directly, against the reference: lists of tensors of odd sizes,
# several steps in a row; tensors the C++ code cannot update in place fall back to the reference --
KERNEL_SIZES = [(), (1,), (7, 3), (1000, 67), (65537,)]  # 0-d; the last one spans two 64K chunks


def _kernel_state(dtype, seed=0, n=5):
    rng = np.random.default_rng(seed)
    return [rand(rng, s, dtype) for s in KERNEL_SIZES[:n]]


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,wd,amsgrad",
                         [(True, 0.1, False), (False, 0.01, False), (False, 0.0, True)])
def test_cpu_adam_step_kernel(dtype, decoupled, wd, amsgrad):
    name = "adam_amsgrad_step" if amsgrad else "adam_step"
    cpu, ref = impls(name)
    ps_c, ps_r = _kernel_state(dtype, 1), _kernel_state(dtype, 1)
    ms_c, ms_r = [np.zeros_like(p) for p in ps_c], [np.zeros_like(p) for p in ps_c]
    vs_c, vs_r = [np.zeros_like(p) for p in ps_c], [np.zeros_like(p) for p in ps_c]
    extra_c = [[np.zeros_like(p) for p in ps_c]] if amsgrad else []
    extra_r = [[np.zeros_like(p) for p in ps_c]] if amsgrad else []
    for step in (1, 2, 3):
        gs = _kernel_state(dtype, 10 + step)
        assert cpu(ps_c, gs, ms_c, vs_c, *extra_c, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled) is None
        ref(ps_r, gs, ms_r, vs_r, *extra_r, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled)
    close(ps_c, ps_r, dtype, "params")
    close(ms_c, ms_r, dtype, "exp_avgs")
    close(vs_c, vs_r, dtype, "exp_avg_sqs")


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,nesterov,maximize,wd",
                         [(0.0, 0.0, False, False, 0.0), (0.9, 0.0, True, False, 1e-2),
                          (0.9, 0.3, False, True, 0.0)])
def test_cpu_sgd_step_kernel(dtype, momentum, dampening, nesterov, maximize, wd):
    cpu, ref = impls("sgd_step")
    ps_c, ps_r = _kernel_state(dtype, 2), _kernel_state(dtype, 2)
    bufs_c, bufs_r = [None] * len(ps_c), [None] * len(ps_r)
    for step in range(3):
        gs = _kernel_state(dtype, 20 + step)
        bufs_c = cpu(ps_c, gs, bufs_c, 0.1, momentum, dampening, wd, nesterov, maximize)
        bufs_r = ref(ps_r, gs, bufs_r, 0.1, momentum, dampening, wd, nesterov, maximize)
    close(ps_c, ps_r, dtype, "params")
    close(bufs_c, bufs_r, dtype, "buffers")


@needs_C
def test_cpu_optim_in_place_fallback_for_noncontiguous_and_float16():
    # a transposed parameter and a float16 one cannot be updated in place by the C++ code:
    # the adapter must hand them to the reference, never update a copy
    rng = np.random.default_rng(3)
    ps = [rand(rng, (5, 4), np.float32).T, rand(rng, (6,), np.float16), rand(rng, (9,), np.float32)]
    ref_ps = [p.copy() for p in ps]
    gs = [rand(rng, p.shape, p.dtype) for p in ps]
    def state():
        return [[np.zeros_like(p) for p in ps] for _ in range(2)]
    impls("adam_step")[0](ps, gs, *state(), 1e-2, 0.9, 0.99, 1e-8, 0.0, 1, True)
    impls("adam_step")[1](ref_ps, gs, *state(), 1e-2, 0.9, 0.99, 1e-8, 0.0, 1, True)
    for a, b in zip(ps, ref_ps):
        close(a, b, a.dtype, "param")


@needs_C
def test_cpu_optim_binding_errors():
    p = [np.ones(4, np.float32)]
    with pytest.raises(ValueError, match=r"params\[0\] has shape \(4,\) but grads\[0\] has shape \(3,\)"):
        _C.adam_step(p, [np.ones(3, np.float32)], p, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, True)
    with pytest.raises(TypeError, match="float64"):
        _C.adam_step(p, [np.ones(4)], p, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, True)
    with pytest.raises(ValueError, match="1 params but 2 exp_avgs"):
        _C.adam_step(p, p, p * 2, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, True)
    with pytest.raises(ValueError, match="step must be >= 1"):
        _C.adam_step(p, p, p, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0, True)
    ro = np.ones(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.sgd_step([ro], p, [None], 0.1, 0.0, 0.0, 0.0, False, False)
    assert _C.sgd_step([], [], [], 0.1, 0.9, 0.0, 0.0, False, False) == []
