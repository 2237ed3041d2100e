"""Plain ViT vs ViT + SPT + LSA (Lee, Lee & Song 2021) on small datasets, same budget, several seeds.

    python examples/vit_small_data/vit_small_data.py --out runs/vit_small_data   # a few minutes, 2 cores
    python examples/vit_small_data/vit_small_data.py --quick --out /tmp/vit       # seconds (smoke test)

Datasets: sklearn's 8x8 digits (tinyml.data.digits_split: 1438 train / 359 test, 10 classes, patch 2 ->
16 tokens) and, when scikit-image is installed, skimage.data.lfw_subset (100 faces + 100 non-faces of
25x25, a stratified 150 / 50 split, patch 5 -> 25 tokens). Both models share everything else: width,
depth, heads, optimizer (AdamW, cosine decay after a linear warm-up), label smoothing 0.1, batches,
augmentation (random translation; plus horizontal flips for faces) and the number of epochs.
Prints a table and writes results.json with per-seed and mean test accuracy.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from tinyml.models.vision.vit import ViT

import tinyml
import tinyml.nn.functional as F
from tinyml.data.digits import digits_split

VARIANTS = {"ViT": dict(spt=False, lsa=False), "ViT+SPT+LSA": dict(spt=True, lsa=True)}


def load_digits_task():
    (x_train, y_train), (x_test, y_test) = digits_split(test_fraction=0.2, seed=0)
    return dict(name="digits", x_train=x_train[:, None], y_train=y_train, x_test=x_test[:, None],
                y_test=y_test, classes=10, patch=2, flip=False, shift=1)


def load_lfw_task():
    """Faces (label 1) vs non-faces (label 0) of skimage's lfw_subset, or None without scikit-image."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        return None
    images = lfw_subset().astype(np.float32)[:, None]                       # (200, 1, 25, 25)
    labels = (np.arange(len(images)) < 100).astype(np.int64)                # the first 100 are faces
    order = np.random.default_rng(0).permutation(100)
    test = np.zeros(len(images), bool)
    test[order[:25]] = test[100 + order[:25]] = True                       # 25 of each class held out
    return dict(name="lfw_subset", x_train=images[~test], y_train=labels[~test], x_test=images[test],
                y_test=labels[test], classes=2, patch=5, flip=True, shift=2)


def augment(batch: np.ndarray, rng: np.random.Generator, shift: int, flip: bool) -> np.ndarray:
    """Random translation by up to `shift` pixels (zero fill) and, when `flip`, horizontal flips."""
    B, C, H, W = batch.shape
    padded = np.pad(batch, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
    out = np.empty_like(batch)
    dy, dx = rng.integers(0, 2 * shift + 1, size=(2, B))
    for i in range(B):
        out[i] = padded[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W]
        if flip and rng.random() < 0.5:
            out[i] = out[i, :, :, ::-1]
    return out


def accuracy(model, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    model.eval()
    correct = 0
    with tinyml.no_grad():
        for start in range(0, len(x), batch):
            logits = model(tinyml.tensor(x[start:start + batch])).numpy()
            correct += int((logits.argmax(-1) == y[start:start + batch]).sum())
    model.train()
    return correct / len(x)


def train_one(task: dict, variant: str, seed: int, epochs: int, width: int, depth: int, batch: int = 64,
              lr: float = 2e-3) -> dict:
    tinyml.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size = task["x_train"].shape[-1]
    model = ViT(size, task["patch"], task["classes"], dim=width, depth=depth, heads=4, mlp_dim=2 * width,
                channels=1, dim_head=width // 4, dropout=0.0, emb_dropout=0.0, **VARIANTS[variant])
    opt = tinyml.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    n = len(task["x_train"])
    steps_per_epoch = math.ceil(n / batch)
    total, warmup = epochs * steps_per_epoch, max(1, epochs * steps_per_epoch // 10)
    step, start = 0, time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            # Linear warm-up then cosine decay to 0, as the paper's training recipe.
            scale = (step + 1) / warmup if step < warmup else \
                0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            for group in opt.param_groups:
                group["lr"] = lr * scale
            x = augment(task["x_train"][idx], rng, task["shift"], task["flip"])
            loss = F.cross_entropy(model(tinyml.tensor(x)), tinyml.tensor(task["y_train"][idx]),
                                   label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return {"test_accuracy": accuracy(model, task["x_test"], task["y_test"]),
            "train_accuracy": accuracy(model, task["x_train"], task["y_train"]),
            "final_loss": float(loss.item()), "seconds": time.perf_counter() - start,
            "parameters": sum(p.numel() for p in model.parameters())}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/vit_small_data")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs-digits", type=int, default=20)
    parser.add_argument("--epochs-lfw", type=int, default=60)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tiny model, 1 seed)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs_digits, args.epochs_lfw, args.width, args.depth = 1, 1, 2, 16, 1
    tasks = [(load_digits_task(), args.epochs_digits), (load_lfw_task(), args.epochs_lfw)]
    results = {"config": vars(args), "tasks": {}}
    for task, epochs in tasks:
        if task is None:
            print("lfw_subset: skipped (scikit-image is not installed)")
            continue
        if args.quick:  # a few hundred images are enough to exercise the whole path
            task["x_train"], task["y_train"] = task["x_train"][:128], task["y_train"][:128]
        entry = {"epochs": epochs, "train_images": len(task["x_train"]), "test_images": len(task["x_test"])}
        for variant in VARIANTS:
            runs = [train_one(task, variant, seed, epochs, args.width, args.depth)
                    for seed in range(args.seeds)]
            accs = [r["test_accuracy"] for r in runs]
            entry[variant] = {"runs": runs, "mean_test_accuracy": float(np.mean(accs)),
                              "std_test_accuracy": float(np.std(accs))}
            per_seed = ", ".join(f"{a:.4f}" for a in accs)
            seconds = np.mean([r["seconds"] for r in runs])
            print(f"{task['name']:<11} {variant:<12} test accuracy {np.mean(accs):.4f} +- {np.std(accs):.4f} "
                  f"(seeds {per_seed}; {seconds:.1f} s per run, {runs[0]['parameters']} parameters)",
                  flush=True)
        results["tasks"][task["name"]] = entry
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
