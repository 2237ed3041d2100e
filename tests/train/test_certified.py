"""Certified training (tinyml.train.certified): the robust loss against PyTorch, PGD stays in its box,
SABR's small box stays in the eps box, certified samples survive PGD, IBP training certifies what standard
training cannot, the schedules, the errors, and the example's --quick run."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from tinyml.train.certified import (
    CertifiedConfig,
    certified_mask,
    epsilon_box,
    evaluate,
    pgd_attack,
    robust_cross_entropy,
    sabr_centre_range,
    schedule,
    small_cnn,
    train_certified,
)

import tinyml
import tinyml.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_robust_cross_entropy_is_the_worst_case_logits_cross_entropy_of_pytorch():
    rng = np.random.default_rng(0)
    margins = rng.normal(size=(5, 9))
    m = tinyml.tensor(margins, requires_grad=True)
    loss = robust_cross_entropy(m)
    loss.backward()
    tm = torch.tensor(margins, requires_grad=True)
    logits = torch.cat([torch.zeros(5, 1, dtype=tm.dtype), -tm], dim=1)
    t_loss = torch.nn.functional.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    t_loss.backward()
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(loss.item(), np.mean(np.log1p(np.exp(-margins).sum(1))), rtol=1e-12)
    np.testing.assert_allclose(m.grad.numpy(), tm.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_pgd_stays_in_its_box_and_never_lowers_the_loss():
    tinyml.manual_seed(0)
    model = small_cnn()
    (x_train, y_train), _ = tinyml.data.digits_split(0.2, seed=0)
    x, y = tinyml.tensor(x_train[:32].reshape(-1, 1, 8, 8)), tinyml.tensor(y_train[:32])
    lower, upper = epsilon_box(x, 0.2)
    x_adv = pgd_attack(model, x, y, lower, upper, steps=5, random_start=False)
    assert np.all(x_adv.numpy() >= lower.numpy()) and np.all(x_adv.numpy() <= upper.numpy())
    assert lower.numpy().min() >= 0 and upper.numpy().max() <= 1
    ce = tinyml.nn.functional.cross_entropy
    with tinyml.no_grad():
        clean, adv = ce(model(x), y, reduction="none").numpy(), ce(model(x_adv), y, reduction="none").numpy()
    assert np.all(adv >= clean - 1e-6) and adv.mean() > clean.mean()
    with pytest.raises(ValueError, match="steps >= 1, got 0"):
        pgd_attack(model, x, y, lower, upper, steps=0)
    with pytest.raises(ValueError, match=r"must have the input's shape \(32, 1, 8, 8\)"):
        pgd_attack(model, x, y, lower[:4], upper[:4])


@pytest.mark.parametrize("epsilon, lam", [(0.1, 0.4), (0.3, 0.4), (1.0, 1.0), (0.5, 0.1)])
def test_sabr_small_boxes_stay_inside_the_clipped_eps_box(epsilon, lam):
    x = tinyml.tensor(np.random.default_rng(1).uniform(0, 1, size=(200,)).astype(np.float32))
    radius = lam * epsilon
    c_lo, c_hi = sabr_centre_range(x, epsilon, radius)
    lo, hi = epsilon_box(x, epsilon)
    assert np.all(c_lo.numpy() <= c_hi.numpy())
    for t in (0.0, 0.3, 1.0):  # centres across the allowed range
        centre = c_lo * (1 - t) + c_hi * t
        small_lo = tinyml.maximum(lo, centre - radius).numpy()
        small_hi = tinyml.minimum(hi, centre + radius).numpy()
        assert np.all(small_lo <= small_hi + 1e-7)
        if radius <= 0.5:  # the small box fits in the data range: clipping to the eps box is not needed
            np.testing.assert_allclose(small_hi - small_lo, 2 * radius, atol=1e-6)


def test_schedules_ramp_epsilon_up_and_kappa_down():
    config = CertifiedConfig(method="ibp", epsilon=0.3, warmup_epochs=2, ramp_epochs=4, kappa_end=0.5)
    assert schedule(config, 0.0) == (0.0, 1.0) and schedule(config, 2.0) == (0.0, 1.0)
    eps, kappa = schedule(config, 4.0)
    assert eps == pytest.approx(0.15) and kappa == pytest.approx(0.75)
    assert schedule(config, 6.0) == pytest.approx((0.3, 0.5)) and schedule(config, 50.0) == pytest.approx(
        (0.3, 0.5)
    )
    assert schedule(CertifiedConfig(method="standard", epsilon=0.3), 50.0) == (0.0, 1.0)
    assert schedule(CertifiedConfig(epsilon=0.3, warmup_epochs=1, ramp_epochs=0), 1.5) == pytest.approx(
        (0.3, 0.5)
    )


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"epsilon": 0.0}, r"epsilon must be in \(0, 1\].*got 0.0"),
        ({"epsilon": 1.5}, r"epsilon must be in \(0, 1\].*got 1.5"),
        ({"epsilon": -0.1}, r"epsilon must be in \(0, 1\].*got -0.1"),
        ({"kappa_end": 1.5}, r"kappa schedule must stay in \[0, 1\], got kappa_end=1.5"),
        ({"kappa_start": -0.2}, r"kappa schedule must stay in \[0, 1\], got kappa_start=-0.2"),
        ({"sabr_lambda": 0.0}, r"sabr_lambda must be in \(0, 1\], got 0.0"),
        ({"method": "crown"}, r"method must be one of \('standard', 'ibp', 'sabr'\), got 'crown'"),
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"ramp_epochs": -1}, "ramp_epochs must be >= 0"),
    ],
)
def test_bad_configurations_are_refused(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        CertifiedConfig(**kwargs)


def test_evaluate_refuses_an_epsilon_outside_the_data_range():
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 1\].*got 2.0"):
        evaluate(small_cnn(), np.zeros((2, 8, 8)), np.zeros(2), 2.0)


def test_ibp_training_certifies_what_standard_training_cannot_and_certificates_hold_under_pgd():
    (x_train, y_train), (x_test, y_test) = tinyml.data.digits_split(0.2, seed=0)
    data = ((x_train, y_train), (x_test, y_test))
    x_eval, y_eval = x_test[:100], y_test[:100]
    common = dict(epsilon=0.1, warmup_epochs=1, ramp_epochs=2, lr=3e-3)
    ibp_model, history = train_certified(CertifiedConfig(method="ibp", epochs=5, **common), data, log=None)
    assert [round(h["epsilon"], 3) for h in history] == [0.0, 0.05, 0.1, 0.1, 0.1]
    std_model, _ = train_certified(CertifiedConfig(method="standard", epochs=3, **common), data, log=None)
    ibp = evaluate(ibp_model, x_eval, y_eval, 0.1, pgd_steps=5, restarts=1)
    std = evaluate(std_model, x_eval, y_eval, 0.1, pgd_steps=5, restarts=1)
    assert std["clean"] > 0.8 and std["certified"] == 0.0
    assert ibp["certified"] > 0.1 and ibp["clean"] > 0.6
    for scores in (ibp, std):
        assert scores["certified"] <= scores["pgd"] <= scores["clean"]
    # sample by sample: a certified input is classified correctly at its PGD point too
    x, y = tinyml.tensor(x_eval.reshape(-1, 1, 8, 8)), tinyml.tensor(y_eval)
    proved = certified_mask(ibp_model, x, y, 0.1, 10).numpy()
    lower, upper = epsilon_box(x, 0.1)
    x_adv = pgd_attack(ibp_model, x, y, lower, upper, steps=5)
    with tinyml.no_grad():
        adv_correct = ibp_model(x_adv).argmax(dim=1).numpy() == y_eval
    assert proved.any() and np.all(adv_correct[proved])


def test_one_sabr_step_trains_through_pgd_and_the_small_box():
    tinyml.manual_seed(2)
    (x_train, y_train), _ = tinyml.data.digits_split(0.2, seed=0)
    config = CertifiedConfig(
        method="sabr", epsilon=0.2, epochs=1, warmup_epochs=0, ramp_epochs=0, batch_size=64, attack_steps=2
    )
    model, history = train_certified(config, ((x_train[:64], y_train[:64]), None), log=None)
    assert history[0]["epsilon"] == 0.2 and np.isfinite(history[0]["loss"])
    assert isinstance(model, nn.Sequential)


def test_the_example_runs_quick(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "examples", "certified"))
    try:
        import certified_digits
    finally:
        sys.path.pop(0)
    out = tmp_path / "rows.json"
    assert certified_digits.main(["--quick", "--epsilons", "0.3", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["method"] for r in rows] == ["standard", "ibp", "sabr"]
    assert all(0 <= r["certified"] <= r["pgd"] <= r["clean"] <= 1 for r in rows)
