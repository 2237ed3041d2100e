"""Interval bound propagation (tinyml.nn.interval): sound, exact for one affine layer, differentiable, and the
same numbers and gradients as the same formulas written in PyTorch."""

import itertools
import math

import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn as nn
from tinyml.nn.interval import (
    BoundedModule,
    BoundedTensor,
    PerturbationLpNorm,
    interval_bounds,
    margin_specification,
    register_interval_rule,
)
from tinyml.testing import gradcheck


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2),
        nn.LeakyReLU(0.1),
        nn.AvgPool2d(2),
        nn.Sequential(nn.Conv2d(6, 6, 1), nn.Tanh()),
        nn.MaxPool2d(2, padding=1),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 5),
    )


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(6, 16),
        nn.Sigmoid(),
        nn.Linear(16, 16),
        nn.ELU(),
        nn.Dropout(0.5),
        nn.Linear(16, 8),
        nn.Softplus(),
        nn.BatchNorm1d(8),
        nn.Hardtanh(-0.5, 2.0),
        nn.Linear(8, 3),
    )


def _conv1d() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(3, 5, 3, padding=1), nn.SELU(), nn.Flatten(), nn.Linear(5 * 7, 4), nn.ReLU6()
    )


def _eval_with_stats(model: nn.Module, shape, rng) -> nn.Module:
    # random running statistics and affine parameters, so BatchNorm's scale has both signs
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.copy_(tinyml.tensor(rng.normal(size=c)))
            m.running_var.copy_(tinyml.tensor(rng.uniform(0.5, 2.0, size=c)))
            m.weight.data.copy_(tinyml.tensor(rng.normal(size=c)))
            m.bias.data.copy_(tinyml.tensor(rng.normal(size=c)))
    return model.double().eval()


@pytest.mark.parametrize("build, shape", [(_cnn, (3, 2, 8, 8)), (_mlp, (3, 6)), (_conv1d, (3, 3, 7))])
def test_every_sampled_input_in_the_box_lands_inside_the_bounds(build, shape):
    rng = np.random.default_rng(0)
    tinyml.manual_seed(0)
    model = _eval_with_stats(build(), shape, rng)
    centre = rng.normal(size=shape)
    radius = rng.uniform(0.0, 0.3, size=shape)
    lower, upper = interval_bounds(model, tinyml.tensor(centre - radius), tinyml.tensor(centre + radius))
    lo, hi = lower.detach().numpy(), upper.detach().numpy()
    assert np.all(lo <= hi)
    with tinyml.no_grad():
        for _ in range(60):  # 59 uniform samples and, last, a random corner of the box
            u = rng.uniform(-1, 1, size=shape) if _ else rng.choice([-1.0, 1.0], size=shape)
            out = model(tinyml.tensor(centre + u * radius)).detach().numpy()
            assert np.all(out >= lo - 1e-12) and np.all(out <= hi + 1e-12)


def test_margin_bounds_with_a_specification_are_sound_and_tighter_than_the_output_box():
    rng = np.random.default_rng(1)
    tinyml.manual_seed(1)
    model = _eval_with_stats(_cnn(), (4, 2, 8, 8), rng)
    x = rng.uniform(0, 1, size=(4, 2, 8, 8))
    labels = tinyml.tensor([0, 3, 4, 1])
    C = margin_specification(labels, 5, dtype=tinyml.float64)
    assert C.shape == (4, 4, 5)
    lower, upper = tinyml.tensor(x - 0.05), tinyml.tensor(x + 0.05)
    m_lo, m_hi = (b.detach().numpy() for b in interval_bounds(model, lower, upper, C=C))
    y_lo, y_hi = (b.detach().numpy() for b in interval_bounds(model, lower, upper))
    c = C.detach().numpy()
    # bounds on C y from the output box: the folded last layer can only be tighter
    loose_lo = np.einsum("bsk,bk->bs", c, (y_lo + y_hi) / 2) - np.einsum(
        "bsk,bk->bs", np.abs(c), (y_hi - y_lo) / 2
    )
    assert np.all(m_lo >= loose_lo - 1e-12) and np.any(m_lo > loose_lo + 1e-9)
    with tinyml.no_grad():
        for _ in range(40):
            out = model(tinyml.tensor(x + rng.uniform(-0.05, 0.05, size=x.shape))).detach().numpy()
            margins = np.einsum("bsk,bk->bs", c, out)
            assert np.all(margins >= m_lo - 1e-12) and np.all(margins <= m_hi + 1e-12)


def test_one_linear_layer_is_bounded_exactly():
    rng = np.random.default_rng(2)
    layer = nn.Linear(4, 3).double()
    centre, radius = rng.normal(size=(2, 4)), rng.uniform(0.1, 1.0, size=(2, 4))
    lower, upper = interval_bounds(layer, tinyml.tensor(centre - radius), tinyml.tensor(centre + radius))
    corners = np.array(list(itertools.product([-1.0, 1.0], repeat=4)))  # (16, 4)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    for i in range(2):
        outs = (centre[i] + corners * radius[i]) @ w.T + b  # (16, 3): the extremes sit at corners
        np.testing.assert_allclose(lower.detach().numpy()[i], outs.min(0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(upper.detach().numpy()[i], outs.max(0), rtol=0, atol=1e-12)


def test_a_zero_width_box_gives_the_forward_pass():
    tinyml.manual_seed(3)
    model = _mlp().eval()
    x = tinyml.randn(5, 6)
    lower, upper = interval_bounds(model, x, x)
    np.testing.assert_allclose(lower.detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(upper.detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def _torch_ibp(tm: torch.nn.Sequential, lo: torch.Tensor, hi: torch.Tensor):
    """The same rules in PyTorch, for parity."""
    for m in tm:
        c, r = (hi + lo) / 2, (hi - lo) / 2
        if isinstance(m, torch.nn.Conv2d):
            c = torch.nn.functional.conv2d(c, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
            r = torch.nn.functional.conv2d(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
            lo, hi = c - r, c + r
        elif isinstance(m, torch.nn.Linear):
            lo, hi = (
                torch.nn.functional.linear(c, m.weight, m.bias) - r @ m.weight.abs().T,
                torch.nn.functional.linear(c, m.weight, m.bias) + r @ m.weight.abs().T,
            )
        elif isinstance(m, torch.nn.BatchNorm2d):
            s = m.weight / torch.sqrt(m.running_var + m.eps)
            t = m.bias - m.running_mean * s
            s, t = s.view(1, -1, 1, 1), t.view(1, -1, 1, 1)
            lo, hi = c * s + t - r * s.abs(), c * s + t + r * s.abs()
        else:
            lo, hi = m(lo), m(hi)
    return lo, hi


def test_bounds_and_their_gradients_match_pytorch():
    tinyml.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    model.eval()
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=2),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    rng = np.random.default_rng(4)
    model[1].running_mean.copy_(tinyml.tensor(rng.normal(size=4).astype(np.float32)))
    model[1].weight.data.copy_(tinyml.tensor(rng.normal(size=4).astype(np.float32)))
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in model.state_dict().items()})
    x = rng.uniform(0, 1, size=(3, 1, 8, 8)).astype(np.float32)
    lo, hi = interval_bounds(model, tinyml.tensor(x - 0.1), tinyml.tensor(x + 0.1))
    (lo.sum() * 2 + hi.sum()).backward()
    t_lo, t_hi = _torch_ibp(tm, torch.tensor(x - 0.1), torch.tensor(x + 0.1))
    (t_lo.sum() * 2 + t_hi.sum()).backward()
    np.testing.assert_allclose(lo.detach().numpy(), t_lo.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hi.detach().numpy(), t_hi.detach().numpy(), rtol=1e-4, atol=1e-5)
    for (name, p), tp in zip(model.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(
            p.grad.detach().numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=name
        )


def test_bounds_are_differentiable_in_float64():
    tinyml.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 9, 2))
    model = model.double()
    x = tinyml.rand(1, 1, 3, 3, dtype=tinyml.float64)
    eps = tinyml.tensor(np.full((1, 1, 3, 3), 0.1), requires_grad=True)
    weight = model[3].weight

    def margins(eps, weight):
        lower, upper = interval_bounds(model, x - eps, x + eps)
        return lower * 2 + upper

    assert gradcheck(margins, [eps, weight])


def test_the_auto_lirpa_style_interface_clips_to_the_data_range():
    tinyml.manual_seed(6)
    model = _mlp().eval()
    x = tinyml.rand(4, 6)
    ptb = PerturbationLpNorm(eps=0.2, norm=math.inf, x_L=0.0, x_U=1.0)
    bounded = BoundedTensor(x, ptb)
    assert bounded.lower.detach().numpy().min() >= 0 and bounded.upper.detach().numpy().max() <= 1
    lb, ub = BoundedModule(model).compute_bounds(x=(bounded,), method="IBP")
    ref_lb, ref_ub = interval_bounds(model, (x - 0.2).clamp(min=0.0), (x + 0.2).clamp(max=1.0))
    np.testing.assert_array_equal(lb.detach().numpy(), ref_lb.detach().numpy())
    np.testing.assert_array_equal(ub.detach().numpy(), ref_ub.detach().numpy())
    assert BoundedModule(model).compute_bounds(x=(bounded,), bound_upper=False)[1] is None
    np.testing.assert_array_equal(BoundedModule(model)(bounded).detach().numpy(), model(x).detach().numpy())


def test_an_inplace_relu_leaves_the_callers_box_alone():
    lower, upper = tinyml.tensor([[-1.0, 2.0]]), tinyml.tensor([[1.0, 3.0]])
    interval_bounds(nn.Sequential(nn.ReLU(inplace=True)), lower, upper)
    np.testing.assert_array_equal(lower.detach().numpy(), [[-1.0, 2.0]])


def test_a_registered_rule_extends_the_supported_layers():
    class Double(nn.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(TypeError, match="no rule for layer Double"):
        interval_bounds(Double(), tinyml.zeros(2), tinyml.ones(2))
    register_interval_rule(Double)(lambda m, lo, hi: (lo * 2, hi * 2))
    lower, upper = interval_bounds(
        nn.Sequential(Double(), nn.ReLU()), tinyml.tensor([-1.0]), tinyml.tensor([1.0])
    )
    assert (lower.item(), upper.item()) == (0.0, 2.0)


@pytest.mark.parametrize(
    "model, fragment",
    [
        (nn.Sequential(nn.Linear(2, 2), nn.GELU()), "no rule for layer GELU"),
        (
            nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(-0.5)),
            r"LeakyReLU\(negative_slope=-0.5\) is not monotone",
        ),
        (nn.Sequential(nn.BatchNorm1d(2)), r"BatchNorm1d\(2\) need its eval-mode affine map.*training=True"),
        (nn.Sequential(nn.Dropout(0.3)), r"Dropout\(p=0.3\) in training mode"),
    ],
)
def test_unsupported_layers_are_named(model, fragment):
    with pytest.raises((TypeError, ValueError), match=fragment):
        interval_bounds(model, tinyml.zeros(3, 2), tinyml.ones(3, 2))


def test_bad_boxes_and_arguments_are_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"one shape, got \(3, 2\) and \(2, 2\)"):
        interval_bounds(layer, tinyml.zeros(3, 2), tinyml.ones(2, 2))
    with pytest.raises(ValueError, match="lower bound exceeds upper bound at 2 of 4 entries"):
        interval_bounds(
            layer, tinyml.tensor([[0.0, 2.0], [1.0, 0.0]]), tinyml.tensor([[1.0, 1.0], [0.0, 0.0]])
        )
    with pytest.raises(ValueError, match=r"C must be \(batch, specs, outputs\) with batch 3"):
        interval_bounds(layer, tinyml.zeros(3, 2), tinyml.ones(3, 2), C=tinyml.zeros(2, 1, 2))
    with pytest.raises(ValueError, match="norm=2"):
        PerturbationLpNorm(eps=0.1, norm=2)
    with pytest.raises(ValueError, match="eps must be >= 0, got -0.1"):
        PerturbationLpNorm(eps=-0.1)
    with pytest.raises(ValueError, match="method='CROWN' is not supported"):
        BoundedModule(layer).compute_bounds(
            x=(BoundedTensor(tinyml.zeros(1, 2), PerturbationLpNorm(0.1)),), method="CROWN"
        )
    with pytest.raises(TypeError, match="no rule for layer GELU"):
        BoundedModule(nn.Sequential(nn.GELU()))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        margin_specification(tinyml.tensor([0, 3]), 3)


def test_nan_in_the_box_propagates():
    lower, upper = interval_bounds(
        nn.Sequential(nn.Linear(2, 2), nn.ReLU()),
        tinyml.tensor([[float("nan"), 0.0]]),
        tinyml.tensor([[1.0, 1.0]]),
    )
    assert np.isnan(lower.detach().numpy()).all() and np.isnan(upper.detach().numpy()).all()
