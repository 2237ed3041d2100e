"""DARTS (tinyml.train.darts): the candidate operations against PyTorch, the mixed operation and the
temperature softmax, discretisation, the first-order search, retraining, errors and the example's --quick."""

import json
import math
import os
import sys

import numpy as np
import pytest
import torch
from tinyml.train.darts import (
    DEFAULT_PRIMITIVES,
    DartsConfig,
    DiscreteNetwork,
    MixedOp,
    SearchNetwork,
    make_operation,
    retrain,
    search,
)

import tinyml
import tinyml.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _to_torch(module: nn.Module) -> torch.nn.Module:
    """The same layers in PyTorch, sharing the weights."""
    if isinstance(module, nn.Sequential):
        return torch.nn.Sequential(*[_to_torch(m) for m in module])
    if isinstance(module, nn.Conv2d):
        t = torch.nn.Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=False,
        )
        t.weight.data = torch.tensor(module.weight.detach().numpy())
        return t
    if isinstance(module, nn.BatchNorm2d):
        return torch.nn.BatchNorm2d(module.num_features, affine=module.affine)
    if isinstance(module, nn.MaxPool2d):
        return torch.nn.MaxPool2d(3, stride=1, padding=1)
    if isinstance(module, nn.AvgPool2d):
        return torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return {nn.ReLU: torch.nn.ReLU, nn.Identity: torch.nn.Identity}[type(module)]()


@pytest.mark.parametrize("name", [n for n in DEFAULT_PRIMITIVES if n != "none"] + ["conv_5x5"])
def test_each_operation_matches_pytorch_forward_and_backward(name):
    tinyml.manual_seed(0)
    op = make_operation(name, 4, affine=False)
    t_op = _to_torch(op)
    x = np.random.default_rng(0).normal(size=(3, 4, 6, 6)).astype(np.float32)
    xt, tt = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, t_out = op(xt), t_op(tt)
    assert out.shape == (3, 4, 6, 6)
    g = np.random.default_rng(1).normal(size=out.shape).astype(np.float32)
    (out * tinyml.tensor(g)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), tt.grad.numpy(), rtol=1e-3, atol=1e-3)


def test_the_mixed_operation_is_the_weighted_sum_and_zero_adds_nothing():
    tinyml.manual_seed(1)
    mixed = MixedOp(4, ["none", "skip_connect", "avg_pool_3x3", "conv_3x3"])
    x = tinyml.randn(2, 4, 5, 5)
    w = tinyml.tensor([0.4, 0.1, 0.2, 0.3], requires_grad=True)
    out = mixed(x, w)
    parts = [op(x).detach().numpy() for op in mixed.ops]
    assert np.all(parts[0] == 0)
    np.testing.assert_allclose(
        out.detach().numpy(), 0.1 * parts[1] + 0.2 * parts[2] + 0.3 * parts[3], rtol=1e-5, atol=1e-6
    )
    out.sum().backward()  # d/dw_o = sum of o(x)
    np.testing.assert_allclose(w.grad.numpy(), [p.sum() for p in parts], rtol=1e-4, atol=1e-4)


def test_arch_weights_are_a_temperature_softmax_and_the_genotype_skips_none():
    net = SearchNetwork(channels=4, num_cells=1, num_nodes=2, temperature=0.1)
    alpha = np.random.default_rng(2).normal(size=(3, len(DEFAULT_PRIMITIVES))).astype(np.float32)
    alpha[:, 0] = 10.0  # `none` is the largest everywhere
    net.alpha.data.copy_(tinyml.tensor(alpha))
    expected = torch.softmax(torch.tensor(alpha) / 0.1, dim=-1).numpy()
    np.testing.assert_allclose(net.arch_weights().detach().numpy(), expected, rtol=1e-5, atol=1e-7)
    w = expected.astype(np.float64)
    assert net.entropy() == pytest.approx(np.mean(-(w * np.log(np.clip(w, 1e-30, None))).sum(1)), abs=1e-5)
    kept = [DEFAULT_PRIMITIVES[1:][k] for k in alpha[:, 1:].argmax(1)]
    assert net.genotype() == kept
    one_hot = net.one_hot_weights().numpy()
    assert one_hot.sum(1).tolist() == [1.0] * 3 and one_hot[:, 0].sum() == 0
    uniform = SearchNetwork(channels=4, num_cells=1, num_nodes=2, temperature=1.0)
    uniform.alpha.data.copy_(tinyml.zeros(3, len(DEFAULT_PRIMITIVES)))
    assert uniform.entropy() == pytest.approx(math.log(len(DEFAULT_PRIMITIVES)), rel=1e-6)


def test_a_small_temperature_makes_the_search_decide_and_search_moves_both_parameter_sets():
    (x_train, y_train), _ = tinyml.data.digits_split(0.2, seed=0)
    train, val = (x_train[:128], y_train[:128]), (x_train[128:192], y_train[128:192])
    entropies = {}
    for t in (1.0, 0.01):
        config = DartsConfig(temperature=t, channels=4, num_cells=1, num_nodes=1, search_epochs=2,
                             batch_size=16)
        tinyml.manual_seed(config.seed)
        before = SearchNetwork(4, 1, 1, config.primitives, t)
        net = search(config, train, val, log=None)
        assert not np.allclose(net.alpha.detach().numpy(), before.alpha.detach().numpy())
        assert not np.allclose(net.stem[0].weight.detach().numpy(), before.stem[0].weight.detach().numpy())
        assert [h["epoch"] for h in config.history] == [0, 1, 2]
        assert 0.0 <= config.history[-1]["discretised_val_acc"] <= 1.0
        entropies[t] = net.entropy()
    assert entropies[1.0] > math.log(len(DEFAULT_PRIMITIVES)) - 0.01  # still uniform
    assert entropies[0.01] < entropies[1.0] - 1.0


def test_the_retrained_discrete_network_learns_the_digits():
    (x_train, y_train), (x_test, y_test) = tinyml.data.digits_split(0.2, seed=0)
    config = DartsConfig(channels=8, num_cells=2, num_nodes=1, retrain_epochs=6, batch_size=32,
                         weight_lr=1e-2)
    net, acc = retrain(
        ["conv_3x3"],
        config,
        (x_train[:512], y_train[:512]),
        (x_test[:120], y_test[:120]),
    )
    assert isinstance(net, DiscreteNetwork) and [e.name for e in net.cells[0].edges] == net.genotype
    assert acc > 0.7


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"primitives": ()}, "the search space has no operations"),
        ({"primitives": ("none",)}, "only 'none'"),
        ({"primitives": ("skip_connect", "conv_7x7")}, r"unknown operations \['conv_7x7'\]"),
        ({"primitives": ("skip_connect", "skip_connect")}, "repeats an operation"),
        ({"temperature": 0.0}, "temperature T must be a finite number > 0, got 0.0"),
        ({"temperature": -1.0}, "temperature T must be a finite number > 0, got -1.0"),
        ({"temperature": float("nan")}, "got nan"),
        ({"search_epochs": 0}, "search_epochs must be >= 1, got 0"),
    ],
)
def test_bad_search_settings_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        DartsConfig(**kwargs)


def test_bad_networks_are_refused():
    with pytest.raises(ValueError, match="temperature T must be a finite number > 0, got 0"):
        SearchNetwork(temperature=0)
    with pytest.raises(ValueError, match="the search space has no operations"):
        SearchNetwork(primitives=[])
    with pytest.raises(ValueError, match="names 3 edges, got 2"):
        DiscreteNetwork(["conv_3x3", "skip_connect"], num_nodes=2)
    with pytest.raises(ValueError, match=r"non-zero operations .* got \['none'\]"):
        DiscreteNetwork(["conv_3x3", "none", "skip_connect"], num_nodes=2)


def test_the_example_runs_quick(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "examples", "darts"))
    try:
        import temperature_sweep
    finally:
        sys.path.pop(0)
    out, png = tmp_path / "rows.json", tmp_path / "entropy.png"
    argv = ["--quick", "--temperatures", "0.1", "--out", str(out), "--plot", str(png)]
    assert temperature_sweep.main(argv) == 0
    (row,) = json.loads(out.read_text())
    assert row["temperature"] == 0.1 and len(row["genotype"]) == 3 and "none" not in row["genotype"]
    assert len(row["entropy_history"]) == 2 and 0 <= row["retrained_test_acc"] <= 1
    assert png.stat().st_size > 1000
