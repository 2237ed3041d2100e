"""tinyml/optim/param_groups.py: the optim_hints keys "lr" (a cap, as the SSMs use it) and
"lr_scale" (a multiplier in both directions, as muP uses it), their combination, the rate the
Trainer's schedule gives each group, and the one-line errors."""
import pytest
from tinyml.train.schedule import WarmupCosine
from tinyml.train.trainer import make_optimizer

import tinyml
import tinyml.nn as nn
from tinyml.optim.param_groups import param_groups


class _Hinted(nn.Module):
    def __init__(self, hint):
        super().__init__()
        self.A = nn.Parameter(tinyml.randn(4, 4))
        self.proj = nn.Linear(4, 4)
        self.optim_hints = {"A": hint}


def _hinted_group(model, lr=1e-2, wd=0.1):
    groups = param_groups(model, lr, wd)
    (group,) = [g for g in groups if any(p is model.A for p in g["params"])]
    return group


@pytest.mark.parametrize("hint, lr, scale", [
    ({"lr": 1e-3}, 1e-3, 0.1),                  # the cap lowers the rate
    ({"lr": 1.0}, 1e-2, 1.0),                   # ... and never raises it
    ({"lr_scale": 0.25}, 2.5e-3, 0.25),         # the multiplier lowers it (muP, wider than the base)
    ({"lr_scale": 4.0}, 4e-2, 4.0),             # ... and raises it (muP, narrower than the base)
    ({"lr_scale": 4.0, "lr": 2e-2}, 2e-2, 2.0),  # scaled, then capped
])
def test_hint_sets_the_group_rate_and_its_scale(hint, lr, scale):
    g = _hinted_group(_Hinted(hint))
    assert g["lr"] == pytest.approx(lr) and g["lr_scale"] == pytest.approx(scale)
    assert g["weight_decay"] == 0.1 and len(g["params"]) == 1  # a 2-d tensor keeps the rule's decay


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_schedule_keeps_the_scaled_rate_in_both_directions(scale):
    model = _Hinted({"lr_scale": scale, "weight_decay": 0.0})
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.1)
    assert [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups] == [(1, 0.1), (1, 0.0), (1, 0.0)]
    sched = WarmupCosine(opt, max_lr=1e-2, warmup_steps=2, decay_steps=10)
    seen = set()
    for _ in range(8):
        rule, hinted = opt.param_groups[0]["lr"], opt.param_groups[2]["lr"]
        assert hinted == pytest.approx(rule * scale)
        seen.add(round(rule, 12))
        sched.step()
    assert len(seen) > 4  # the schedule did move the rates


@pytest.mark.parametrize("hint, message", [
    ({"lr_scale": -1.0}, "optim_hints for A: 'lr_scale' must be a finite number >= 0, got -1.0"),
    ({"lr_scale": float("inf")}, "'lr_scale' must be a finite number >= 0, got inf"),
    ({"lr": "fast"}, "'lr' must be a finite number >= 0, got 'fast'"),
    ({"momentum": 0.9}, r"unknown keys \['momentum'\]; expected \['lr', 'lr_scale', 'weight_decay'\]"),
])
def test_bad_hints_are_named(hint, message):
    with pytest.raises(ValueError, match=message):
        param_groups(_Hinted(hint), 1e-2, 0.1)
