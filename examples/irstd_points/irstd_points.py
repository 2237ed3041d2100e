"""Infrared small-target segmentation from point labels: full masks vs MCLC pseudo-masks (vs the bare point).

    python examples/irstd_points/irstd_points.py --out runs/irstd_points     # several minutes on 2 cores
    python examples/irstd_points/irstd_points.py --quick --out /tmp/irstd    # seconds (smoke test)

Data: tinyml.train.detect.synthetic.SyntheticIR (1-9 px targets on cloud / horizon / clutter backgrounds),
train images 0..n_train-1 and held-out images n_train..n_train+n_test-1 of the same seed.
The same SmallTargetSegmenter (models/detection/segment.py) is trained three times with the same crops,
steps and optimizer; only the masks it learns from differ:

    full     the true masks
    mclc     MCLC pseudo-masks made from the point labels alone (models/detection/mclc.py)
    point    the labelled pixel alone (the naive point-supervision baseline)

Held-out images are scored with irstd_metrics (IoU, nIoU, Pd, Fa; models/detection/metrics.py), and the
pseudo-masks themselves against the true train masks. Prints a table and writes results.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from tinyml.models.detection.mclc import mclc_pseudo_masks
from tinyml.models.detection.metrics import irstd_metrics
from tinyml.models.detection.segment import SmallTargetSegmenter
from tinyml.train.detect.synthetic import SyntheticIR

import tinyml

VARIANTS = ("full", "mclc", "point")


def load(n_images: int, size: int, first_index: int, seed: int):
    ds = SyntheticIR(n_images, size=size, seed=seed, first_index=first_index)
    samples = [ds[i] for i in range(len(ds))]
    images = np.stack([image for image, _ in samples])                    # (N, 1, H, W)
    return images, [target for _, target in samples]


def point_masks(targets, shape) -> list[np.ndarray]:
    out = []
    for t in targets:
        m = np.zeros(shape, np.uint8)
        for x, y in t["points"]:
            m[min(int(y), shape[0] - 1), min(int(x), shape[1] - 1)] = 1
        out.append(m)
    return out


def sample_crops(rng, images, targets, crop: int, batch: int):
    """Crop origins (batch, 2): around a random labelled point with probability 0.75, else anywhere."""
    n, _, H, W = images.shape
    picks = rng.integers(0, n, size=batch)
    origins = []
    for i in picks:
        points = targets[i]["points"]
        if len(points) and rng.random() < 0.75:
            x, y = points[rng.integers(len(points))]
            y0 = int(np.clip(y - rng.integers(4, crop - 4), 0, H - crop))
            x0 = int(np.clip(x - rng.integers(4, crop - 4), 0, W - crop))
        else:
            y0, x0 = int(rng.integers(0, H - crop + 1)), int(rng.integers(0, W - crop + 1))
        origins.append((i, y0, x0))
    return origins


def train(images, masks, targets, steps: int, crop: int, batch: int, base: int, lr: float, seed: int):
    tinyml.manual_seed(seed)
    rng = np.random.default_rng(seed)                    # the same crops for every variant
    model = SmallTargetSegmenter(in_channels=1, base_channels=base, depth=3)
    opt = tinyml.optim.Adam(model.parameters(), lr=lr)
    history = []
    for step in range(steps):
        for group in opt.param_groups:                   # cosine decay: late steps refine the small masks
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        origins = sample_crops(rng, images, targets, crop, batch)
        x = np.stack([images[i, :, y0:y0 + crop, x0:x0 + crop] for i, y0, x0 in origins])
        flips = rng.random(batch) < 0.5                  # horizontal flips
        x[flips] = x[flips, :, :, ::-1]
        m = np.stack([masks[i][y0:y0 + crop, x0:x0 + crop] for i, y0, x0 in origins])
        m[flips] = m[flips, :, ::-1]
        total, parts = model.loss(model(tinyml.tensor(np.ascontiguousarray(x))), np.ascontiguousarray(m))
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.item()))
    return model, history


def evaluate(model, images, truth, batch: int = 8) -> dict:
    preds = []
    for start in range(0, len(images), batch):
        preds.extend(model.predict_masks(images[start:start + batch], threshold=0.5))
    return irstd_metrics(preds, truth)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/irstd_points")
    parser.add_argument("--n-train", type=int, default=120)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--base", type=int, default=8, help="width of the first U-Net level")
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--mclc-runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.size, args.steps = 6, 3, 64, 3
        args.crop, args.base, args.mclc_runs = 32, 4, 8

    train_images, train_targets = load(args.n_train, args.size, 0, args.seed)
    test_images, test_targets = load(args.n_test, args.size, args.n_train, args.seed)
    shape = train_images.shape[2:]
    start = time.perf_counter()
    pseudo = [mclc_pseudo_masks(img[0], t["points"], runs=args.mclc_runs, seed=i)
              for i, (img, t) in enumerate(zip(train_images, train_targets))]
    mclc_seconds = time.perf_counter() - start
    truth = [t["mask"] for t in train_targets]
    masks = {"full": truth, "mclc": pseudo, "point": point_masks(train_targets, shape)}
    n_points = sum(len(t["points"]) for t in train_targets)
    results = {"config": vars(args), "train_targets": n_points, "mclc_seconds": mclc_seconds,
               "pseudo_mask_quality": {v: irstd_metrics(masks[v], truth) for v in ("mclc", "point")},
               "held_out": {}}
    q = results["pseudo_mask_quality"]["mclc"]
    print(f"MCLC pseudo-masks for {n_points} points in {mclc_seconds:.1f} s: IoU {q['IoU']:.3f} "
          f"nIoU {q['nIoU']:.3f} Pd {q['Pd']:.3f} Fa {q['Fa']:.2e} against the true train masks", flush=True)
    test_truth = [t["mask"] for t in test_targets]
    print(f"{'trained on':<10} {'IoU':>7} {'nIoU':>7} {'Pd':>7} {'Fa':>9}  (held-out, {args.n_test} images)")
    for variant in VARIANTS:
        t0 = time.perf_counter()
        model, history = train(train_images, masks[variant], train_targets, args.steps, args.crop, args.batch,
                               args.base, args.lr, args.seed)
        metrics = evaluate(model, test_images, test_truth)
        metrics.update(train_seconds=time.perf_counter() - t0, final_loss=float(np.mean(history[-20:])))
        results["held_out"][variant] = metrics
        print(f"{variant:<10} {metrics['IoU']:7.3f} {metrics['nIoU']:7.3f} {metrics['Pd']:7.3f} "
              f"{metrics['Fa']:9.2e}  ({metrics['train_seconds']:.0f} s)", flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
