"""S4D: forward and backward against state-spaces' S4D written in torch with complex tensors, conv mode
vs step mode in float64, every init and both discretizations, gradcheck of the kernel, the
parameter groups, a small learning check and the errors."""
import numpy as np
import pytest
import torch
from tinyml.models.ssm import S4D
from tinyml.models.ssm.s4d import INITS, causal_convolution

import tinyml
from tinyml.optim.param_groups import param_groups
from tinyml.testing import assert_close, gradcheck

TF = torch.nn.functional


def torch_s4d(p, u, discretization):
    """state-spaces' s4d.py (S4DKernel + S4D.forward) with a trainable B, in complex torch."""
    dt = p["kernel.log_dt"].exp()
    A = -p["kernel.log_A_real"].exp() + 1j * p["kernel.A_imag"]
    B, C = torch.view_as_complex(p["kernel.B"]), torch.view_as_complex(p["kernel.C"])
    dtA = A * dt[:, None]
    if discretization == "zoh":
        dA = torch.exp(dtA)
        dB = (dA - 1) / A * B
    else:
        dA = (1 + dtA / 2) / (1 - dtA / 2)
        dB = dt[:, None] * B / (1 - dtA / 2)
    L = u.shape[-1]
    K = 2 * torch.einsum("hn,hnl->hl", C * dB, dA[..., None] ** torch.arange(L, dtype=u.dtype)).real
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(K, n=2 * L), n=2 * L)[..., :L]
    y = TF.gelu(y + u * p["D"][:, None]).transpose(1, 2)
    y = TF.glu(TF.linear(y, p["output_linear.weight"], p["output_linear.bias"]), dim=-1)
    return y.transpose(1, 2)


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
@pytest.mark.parametrize("init", ["legs", "random"])
def test_matches_torch_forward_and_backward(init, discretization):
    model = S4D(5, 8, init=init, discretization=discretization, seed=1)
    u = np.random.default_rng(0).standard_normal((2, 5, 11)).astype(np.float32)
    tu = tinyml.tensor(u, requires_grad=True)
    y = model(tu)
    params = {k: torch.tensor(v.detach().numpy(), requires_grad=True) for k, v in model.named_parameters()}
    pu = torch.tensor(u, requires_grad=True)
    py = torch_s4d(params, pu, discretization)
    assert_close(y, py, kind="reduction", atol=1e-5)
    g = np.random.default_rng(1).standard_normal(py.shape).astype(np.float32)
    (y * tinyml.tensor(g)).sum().backward()
    (py * torch.tensor(g)).sum().backward()
    assert_close(tu.grad, pu.grad, kind="reduction", atol=1e-5)
    for name, p in model.named_parameters():
        assert_close(p.grad, params[name].grad, kind="reduction", rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
@pytest.mark.parametrize("init", INITS)
def test_step_mode_equals_conv_mode(init, discretization):
    model = S4D(4, 6, init=init, discretization=discretization, seed=2).double()
    u = tinyml.randn(3, 4, 17, dtype=tinyml.float64)
    with tinyml.no_grad():
        y = model(u)
        state, steps = model.default_state(3), []
        for t in range(17):
            yt, state = model.step(u[:, :, t], state)
            steps.append(yt)
    assert_close(tinyml.stack(steps, -1), y, rtol=0, atol=1e-5)
    assert_close(tinyml.stack(steps, -1), y, rtol=1e-9, atol=1e-12)  # far tighter in fact


def test_transposed_false_takes_batch_length_channels():
    model = S4D(3, 4, seed=0, transposed=False)
    u = tinyml.randn(2, 9, 3)
    y = model(u)
    model.transposed = True
    assert_close(y, model(u.transpose(1, 2)).transpose(1, 2))


def test_kernel_gradcheck():
    model = S4D(2, 4, init="lin", discretization="bilinear", seed=3).double()
    k = model.kernel
    params = [k.log_dt, k.log_A_real, k.A_imag, k.B, k.C]
    assert gradcheck(lambda *_: k(7), params, atol=1e-6)


def test_causal_convolution_matches_the_sum(device):
    """By FFT on cpu, as a grouped conv1d on cuda (no FFT kernels there)."""
    u, k = tinyml.randn(2, 3, 10), tinyml.randn(3, 10)
    want = np.einsum("hj,bhtj->bht", k.numpy(),
                     np.stack([np.pad(u.numpy(), ((0, 0), (0, 0), (j, 0)))[..., :10] for j in range(10)], -1))
    assert_close(causal_convolution(u.to(device), k.to(device)), want, kind="reduction")


def test_param_groups_follow_the_hints():
    model = tinyml.nn.Sequential(S4D(4, 8, seed=0, lr=1e-3), tinyml.nn.Linear(4, 4))
    groups = param_groups(model, lr=3e-3, weight_decay=0.1)
    by_param = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    for name in ("0.kernel.log_dt", "0.kernel.log_A_real", "0.kernel.A_imag"):
        assert by_param[id(named[name])] == (1e-3, 0.0), name
    assert by_param[id(named["0.kernel.C"])] == (3e-3, 0.1)  # 3-d, no hint: decayed
    assert by_param[id(named["1.bias"])] == (3e-3, 0.0)
    assert sum(len(g["params"]) for g in groups) == len(named)
    assert param_groups(model, lr=1e-4, weight_decay=0.1)[0]["lr"] <= 1e-4  # a hint caps, never raises
    opt = tinyml.optim.AdamW(groups, lr=3e-3)
    assert len(opt.param_groups) == len(groups)


def test_learns_a_shift():
    """y_t = u_{t-3}: a one-layer S4D with a linear readout fits it in a few dozen steps."""
    tinyml.manual_seed(0)
    layer = S4D(8, 16, seed=0, transposed=False)
    enc, dec = tinyml.nn.Linear(1, 8), tinyml.nn.Linear(8, 1)
    params = list(layer.parameters()) + list(enc.parameters()) + list(dec.parameters())
    opt = tinyml.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(60):
        u = tinyml.randn(16, 32, 1)
        target = tinyml.cat([tinyml.zeros(16, 3, 1), u[:, :-3]], 1)
        loss = ((dec(layer(enc(u))) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])


def test_errors_name_the_values():
    with pytest.raises(ValueError, match="'legx'"):
        S4D(4, 8, init="legx")
    with pytest.raises(ValueError, match="even.*7"):
        S4D(4, 7)
    with pytest.raises(ValueError, match="'euler'"):
        S4D(4, 8, discretization="euler")
    model = S4D(4, 8, seed=0)
    with pytest.raises(ValueError, match=r"\(2, 5, 9\).*5 channels.*d_model = 4"):
        model(tinyml.randn(2, 5, 9))
    with pytest.raises(ValueError, match=r"\(B, H, L\).*\(2, 4\)"):
        model(tinyml.randn(2, 4))
    with pytest.raises(ValueError, match=r"state has shape \(2, 4, 3, 2\), expected \(2, 4, 4, 2\)"):
        model.step(tinyml.randn(2, 4), tinyml.zeros(2, 4, 3, 2))
