"""Certified training on the 8x8 digits: standard, IBP (Gowal et al. 2018) and SABR (Mueller et al. 2023).

Every method minimises  kappa * CE(model(x), y) + (1 - kappa) * robust_CE(box)  (losses.py), with
    standard: kappa = 1 throughout (no box);
    ibp:      box = the eps box around x (clipped to [0, 1]);
    sabr:     box = a small box of half-width lambda * eps around the PGD point x' (losses.sabr_centre_range),
              clipped to the eps box.
Schedules (Gowal et al.): `warmup_epochs` of clean training (eps = 0, kappa = kappa_start), then over
`ramp_epochs` eps rises linearly from 0 to `epsilon` and kappa falls linearly from kappa_start to kappa_end;
both then stay there.

Evaluation (`evaluate`): clean accuracy, PGD accuracy (PGD with restarts inside the eps box) and certified
accuracy (IBP margin lower bounds > 0 for every other class). Certified <= PGD <= clean, always.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from .attacks import pgd_attack
from .losses import certified_mask, epsilon_box, margin_lower_bounds, robust_cross_entropy, sabr_centre_range

METHODS = ("standard", "ibp", "sabr")
NUM_CLASSES = 10


def small_cnn() -> nn.Sequential:
    """The CNN of the table: two convolutions and two linear layers on (N, 1, 8, 8) inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),              # (N, 16, 8, 8)
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),   # (N, 32, 4, 4)
        nn.Flatten(), nn.Linear(32 * 4 * 4, 100), nn.ReLU(),    # (N, 100)
        nn.Linear(100, NUM_CLASSES))                            # (N, 10)


@dataclass
class CertifiedConfig:
    method: str = "ibp"
    epsilon: float = 0.1          # L-infinity radius on the [0, 1] pixel scale, for training and evaluation
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    warmup_epochs: int = 3
    ramp_epochs: int = 30
    kappa_start: float = 1.0
    kappa_end: float = 0.5
    sabr_lambda: float = 0.4      # SABR's small box: half-width lambda * epsilon
    attack_steps: int = 8         # PGD steps that place SABR's small box
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in (0, 1] (pixels are in [0, 1]), got {self.epsilon}")
        for name in ("kappa_start", "kappa_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"the kappa schedule must stay in [0, 1], got {name}={getattr(self, name)}")
        if not 0.0 < self.sabr_lambda <= 1.0:
            raise ValueError(f"sabr_lambda must be in (0, 1], got {self.sabr_lambda}")
        for name in ("epochs", "batch_size", "attack_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_epochs < 0 or self.ramp_epochs < 0:
            raise ValueError(f"warmup_epochs and ramp_epochs must be >= 0, got {self.warmup_epochs} and "
                             f"{self.ramp_epochs}")


def schedule(config: CertifiedConfig, progress: float) -> tuple[float, float]:
    """(epsilon, kappa) at `progress` epochs into training (fractional)."""
    if config.method == "standard":
        return 0.0, 1.0
    if config.ramp_epochs == 0:
        ramp = 0.0 if progress < config.warmup_epochs else 1.0
    else:
        ramp = min(max((progress - config.warmup_epochs) / config.ramp_epochs, 0.0), 1.0)
    return config.epsilon * ramp, config.kappa_start + (config.kappa_end - config.kappa_start) * ramp


def certified_loss(model: nn.Module, x: tinyml.Tensor, y: tinyml.Tensor, config: CertifiedConfig,
                   epsilon: float, kappa: float, rng: np.random.Generator) -> tinyml.Tensor:
    """kappa * clean CE + (1 - kappa) * robust CE on the method's box (IBP: eps box; SABR: small box)."""
    loss = F.cross_entropy(model(x), y)
    if config.method == "standard" or epsilon == 0.0 or kappa == 1.0:
        return loss
    lower, upper = epsilon_box(x, epsilon)
    if config.method == "sabr":
        radius = config.sabr_lambda * epsilon
        c_lo, c_hi = sabr_centre_range(x, epsilon, radius)
        centre = pgd_attack(model, x, y, c_lo, c_hi, steps=config.attack_steps, generator=rng)
        lower = tinyml.maximum(lower, centre - radius)
        upper = tinyml.minimum(upper, centre + radius)
    robust = robust_cross_entropy(margin_lower_bounds(model, lower, upper, y, NUM_CLASSES))
    return loss * kappa + robust * (1.0 - kappa)


def train_certified(config: CertifiedConfig, data=None, log=print) -> tuple[nn.Module, list[dict]]:
    """Train small_cnn() on digits (or data = ((x_train, y_train), (x_test, y_test)), images (n, 8, 8)).

    Returns the model and one history row per epoch (epoch, epsilon, kappa, loss, seconds).
    """
    (x_train, y_train), _ = data if data is not None else tinyml.data.digits_split(0.2, seed=0)
    tinyml.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = small_cnn()
    optimizer = tinyml.optim.Adam(model.parameters(), lr=config.lr)
    images = np.asarray(x_train, dtype=np.float32).reshape(-1, 1, 8, 8)
    labels = np.asarray(y_train, dtype=np.int64)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    history, start = [], time.perf_counter()
    for epoch in range(config.epochs):
        order, total = rng.permutation(len(images)), 0.0
        for i in range(steps_per_epoch):
            eps, kappa = schedule(config, epoch + i / steps_per_epoch)
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            x, y = tinyml.tensor(images[idx]), tinyml.tensor(labels[idx])
            loss = certified_loss(model, x, y, config, eps, kappa, rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        eps, kappa = schedule(config, epoch + 1)
        history.append({"epoch": epoch + 1, "epsilon": eps, "kappa": kappa, "loss": total / steps_per_epoch,
                        "seconds": time.perf_counter() - start})
        if log is not None and (epoch + 1) % 10 == 0:
            log(f"{config.method} eps={config.epsilon}: epoch {epoch + 1}/{config.epochs} "
                f"loss {history[-1]['loss']:.4f} (eps {eps:.3f}, kappa {kappa:.2f})")
    return model, history


def evaluate(model: nn.Module, x_test, y_test, epsilon: float, pgd_steps: int = 20, restarts: int = 2,
             batch_size: int = 256, seed: int = 0) -> dict:
    """{clean, pgd, certified}: accuracies on (x_test, y_test) at L-infinity radius epsilon."""
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(f"epsilon must be in (0, 1] (pixels are in [0, 1]), got {epsilon}")
    images = np.asarray(x_test, dtype=np.float32).reshape(-1, 1, 8, 8)
    labels = np.asarray(y_test, dtype=np.int64)
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    clean = robust = certified = 0
    for s in range(0, len(images), batch_size):
        x, y = tinyml.tensor(images[s:s + batch_size]), tinyml.tensor(labels[s:s + batch_size])
        with tinyml.no_grad():
            correct = model(x).argmax(dim=1).numpy() == y.numpy()
        still_correct = correct.copy()
        lower, upper = epsilon_box(x, epsilon)
        for _ in range(restarts):
            x_adv = pgd_attack(model, x, y, lower, upper, steps=pgd_steps, generator=rng)
            with tinyml.no_grad():
                still_correct &= model(x_adv).argmax(dim=1).numpy() == y.numpy()
        proved = certified_mask(model, x, y, epsilon, NUM_CLASSES).numpy()
        clean += int(correct.sum())
        robust += int(still_correct.sum())
        certified += int(proved.sum())
    model.train(was_training)
    n = len(images)
    return {"clean": clean / n, "pgd": robust / n, "certified": certified / n}


def run_table(epsilons=(0.1, 0.3), methods=METHODS, data=None, eval_options: dict | None = None, log=print,
              **overrides) -> list[dict]:
    """Train and evaluate every method at every epsilon; one row each (config, accuracies, seconds).

    data: ((x_train, y_train), (x_test, y_test)), the digits split by default; eval_options go to evaluate;
    overrides to CertifiedConfig.
    """
    (x_train, y_train), (x_test, y_test) = data if data is not None else tinyml.data.digits_split(0.2, seed=0)
    rows = []
    for epsilon in epsilons:
        for method in methods:
            config = CertifiedConfig(method=method, epsilon=epsilon, **overrides)
            start = time.perf_counter()
            model, history = train_certified(config, ((x_train, y_train), (x_test, y_test)), log=log)
            train_seconds = time.perf_counter() - start
            scores = evaluate(model, x_test, y_test, epsilon, **(eval_options or {}))
            rows.append({**asdict(config), **scores, "train_seconds": train_seconds,
                         "eval_seconds": time.perf_counter() - start - train_seconds,
                         "final_loss": history[-1]["loss"]})
            if log is not None:
                log(f"{method:8s} eps={epsilon}: clean {scores['clean']:.3f} pgd {scores['pgd']:.3f} "
                    f"certified {scores['certified']:.3f} ({train_seconds:.0f} s)")
    return rows
