"""First-order DARTS on the 8x8 digits: search, discretise, retrain; and the sweep over temperatures.

Search alternates, per step (first-order DARTS, Liu et al. 2019, with the temperature of "Small temperature
is all you need for differentiable architecture search"):

    alpha <- alpha - Adam(grad_alpha CE(supernet(x_val; softmax(alpha / T)), y_val))     validation split
    w     <- w     - Adam(grad_w     CE(supernet(x_train; softmax(alpha / T)), y_train)) training split

After each epoch: the mean entropy of softmax(alpha / T) per edge, the genotype (argmax per edge without
`none`), the supernet's validation accuracy, and that of the discretised supernet (the same weights, one-hot
operation weights), both with BatchNorm statistics recomputed for their weights on the search-train split;
their difference is the discretisation gap, which a small T closes.
Retraining builds DiscreteNetwork(genotype) with fresh weights, trains it on both splits and scores it on
the held-out test set.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import tinyml
import tinyml.nn.functional as F

from .network import DiscreteNetwork, SearchNetwork
from .operations import DEFAULT_PRIMITIVES, check_primitives


@dataclass
class DartsConfig:
    temperature: float = 1.0
    primitives: tuple = DEFAULT_PRIMITIVES
    channels: int = 8
    num_cells: int = 2
    num_nodes: int = 2
    search_epochs: int = 10
    retrain_epochs: int = 20
    batch_size: int = 64
    weight_lr: float = 3e-3
    alpha_lr: float = 1e-2       # DARTS's 3e-4 is for 50 CIFAR epochs; this search is 10 short epochs
    alpha_weight_decay: float = 1e-3
    seed: int = 0
    history: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.primitives = check_primitives(self.primitives)
        t = self.temperature
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise ValueError(f"the softmax temperature T must be a finite number > 0, got {t}")
        for name in ("channels", "num_cells", "num_nodes", "search_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.retrain_epochs < 0:
            raise ValueError(f"retrain_epochs must be >= 0, got {self.retrain_epochs}")


def _images(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1, 1, 8, 8)


def accuracy(model, x, y, weights=None, batch_size: int = 256) -> float:
    """Top-1 accuracy of model (eval mode) on images (n, 8, 8); weights go to a SearchNetwork's forward."""
    images, labels = _images(x), np.asarray(y)
    model.eval()
    correct = 0
    with tinyml.no_grad():
        for s in range(0, len(images), batch_size):
            xb = tinyml.tensor(images[s:s + batch_size])
            logits = model(xb) if weights is None else model(xb, weights)
            correct += int((logits.argmax(dim=1).numpy() == labels[s:s + batch_size]).sum())
    model.train()
    return correct / len(images)


def calibrated_accuracy(net: SearchNetwork, weights, calibration_images, x, y,
                        batch_size: int = 256) -> float:
    """Accuracy of the supernet under operation weights `weights`, its BatchNorm statistics recomputed for
    those weights on `calibration_images` first (on a copy: the supernet is untouched). The running
    statistics gathered during search lag behind alpha, which moves fast at a small T."""
    probe = copy.deepcopy(net)
    weights = weights.detach()
    for m in probe.modules():
        if isinstance(m, tinyml.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
    images = _images(calibration_images)
    probe.train()
    with tinyml.no_grad():
        for s in range(0, len(images), batch_size):
            probe(tinyml.tensor(images[s:s + batch_size]), weights)
    return accuracy(probe, x, y, weights)


def search(config: DartsConfig, train, val, log=print) -> SearchNetwork:
    """Bi-level first-order search; fills config.history with one row per epoch and returns the supernet."""
    tinyml.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = SearchNetwork(config.channels, config.num_cells, config.num_nodes, config.primitives,
                        config.temperature)
    w_opt = tinyml.optim.Adam(net.weight_parameters(), lr=config.weight_lr)
    a_opt = tinyml.optim.Adam(net.arch_parameters(), lr=config.alpha_lr, betas=(0.5, 0.999),
                              weight_decay=config.alpha_weight_decay)
    x_tr, y_tr = _images(train[0]), np.asarray(train[1])
    x_va, y_va = _images(val[0]), np.asarray(val[1])
    steps = math.ceil(len(x_tr) / config.batch_size)
    config.history = [{"epoch": 0, "entropy": net.entropy(), "genotype": net.genotype()}]
    start = time.perf_counter()
    for epoch in range(config.search_epochs):
        order_tr, order_va = rng.permutation(len(x_tr)), rng.permutation(len(x_va))
        for i in range(steps):
            iv = order_va[(i * config.batch_size) % len(x_va):][:config.batch_size]
            a_opt.zero_grad()
            F.cross_entropy(net(tinyml.tensor(x_va[iv])), tinyml.tensor(y_va[iv])).backward()
            a_opt.step()  # only alpha moves; the weights' gradients are cleared before their own step
            it = order_tr[i * config.batch_size:(i + 1) * config.batch_size]
            w_opt.zero_grad()
            loss = F.cross_entropy(net(tinyml.tensor(x_tr[it])), tinyml.tensor(y_tr[it]))
            loss.backward()
            w_opt.step()
        row = {"epoch": epoch + 1, "entropy": net.entropy(), "genotype": net.genotype(),
               "supernet_val_acc": calibrated_accuracy(net, net.arch_weights(), x_tr, x_va, y_va),
               "discretised_val_acc": calibrated_accuracy(net, net.one_hot_weights(), x_tr, x_va, y_va),
               "seconds": time.perf_counter() - start}
        config.history.append(row)
        if log is not None:
            log(f"T={config.temperature} epoch {epoch + 1}: entropy {row['entropy']:.3f} supernet "
                f"{row['supernet_val_acc']:.3f} discretised {row['discretised_val_acc']:.3f} "
                f"{row['genotype']}")
    return net


def retrain(genotype, config: DartsConfig, train, test) -> tuple[DiscreteNetwork, float]:
    """DiscreteNetwork(genotype) from scratch on `train`, then its accuracy on `test`."""
    tinyml.manual_seed(config.seed + 1)
    rng = np.random.default_rng(config.seed + 1)
    net = DiscreteNetwork(genotype, config.channels, config.num_cells, config.num_nodes)
    opt = tinyml.optim.Adam(net.parameters(), lr=config.weight_lr)
    x, y = _images(train[0]), np.asarray(train[1])
    for _ in range(config.retrain_epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x), config.batch_size):
            idx = order[s:s + config.batch_size]
            opt.zero_grad()
            F.cross_entropy(net(tinyml.tensor(x[idx])), tinyml.tensor(y[idx])).backward()
            opt.step()
    return net, accuracy(net, test[0], test[1])


def run_temperatures(temperatures=(1.0, 0.1, 0.01), data=None, log=print, **overrides) -> list[dict]:
    """Search + retrain at every temperature on the digits (train split halved into search-train and
    search-val; retraining on the whole train split; accuracy on the test split). One row per T."""
    (x_train, y_train), (x_test, y_test) = data if data is not None else tinyml.data.digits_split(0.2, seed=0)
    half = len(x_train) // 2
    train, val = (x_train[:half], y_train[:half]), (x_train[half:], y_train[half:])
    rows = []
    for t in temperatures:
        config = DartsConfig(temperature=t, **overrides)
        start = time.perf_counter()
        net = search(config, train, val, log=log)
        search_seconds = time.perf_counter() - start
        _, test_acc = retrain(net.genotype(), config, (x_train, y_train), (x_test, y_test))
        last = config.history[-1]
        row = {**{k: v for k, v in asdict(config).items() if k != "history"},
               "primitives": list(config.primitives), "genotype": net.genotype(),
               "entropy_history": [h["entropy"] for h in config.history], "final_entropy": last["entropy"],
               "supernet_val_acc": last["supernet_val_acc"],
               "discretised_val_acc": last["discretised_val_acc"],
               "retrained_test_acc": test_acc, "search_seconds": search_seconds,
               "retrain_seconds": time.perf_counter() - start - search_seconds}
        rows.append(row)
        if log is not None:
            log(f"T={t}: genotype {row['genotype']} entropy {row['final_entropy']:.3f} retrained test "
                f"accuracy {test_acc:.3f} (search {search_seconds:.0f} s, "
                f"retrain {row['retrain_seconds']:.0f} s)")
    return rows
