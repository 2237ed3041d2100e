"""DARTS with a softmax temperature on the 8x8 digits: how T changes the chosen cell (docs/darts.md).

    python examples/darts/temperature_sweep.py                     # T = 1, 0.1, 0.01: search, retrain, plot
    python examples/darts/temperature_sweep.py --quick             # seconds: a smoke run on a small subset

Prints one line per search epoch and a markdown table; --out writes the rows as JSON, --plot the entropy of
softmax(alpha / T) over the search.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from tinyml.train.darts import run_temperatures

import tinyml


def markdown(rows: list[dict]) -> str:
    lines = ["| T | seed | final entropy (nats) | supernet val | discretised supernet val | retrained test "
             "| genotype |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['temperature']} | {r['seed']} | {r['final_entropy']:.3f} | "
                     f"{r['supernet_val_acc']:.3f} | {r['discretised_val_acc']:.3f} | "
                     f"{r['retrained_test_acc']:.3f} | {', '.join(r['genotype'])} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Mean (min - max) over seeds, per temperature."""
    keys = ("final_entropy", "supernet_val_acc", "discretised_val_acc", "retrained_test_acc")
    lines = ["| T | seeds | final entropy | supernet val | discretised val | retrained test |",
             "|---|---|---|---|---|---|"]
    for t in dict.fromkeys(r["temperature"] for r in rows):
        group = [r for r in rows if r["temperature"] == t]
        cells = [f"{np.mean([r[k] for r in group]):.3f} ({min(r[k] for r in group):.3f} - "
                 f"{max(r[k] for r in group):.3f})" for k in keys]
        lines.append(f"| {t} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib  # only for the figure
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for n, t in enumerate(dict.fromkeys(r["temperature"] for r in rows)):
        curves = np.array([r["entropy_history"] for r in rows if r["temperature"] == t])  # (seeds, epochs+1)
        for k, curve in enumerate(curves):
            ax.plot(range(len(curve)), curve, color=f"C{n}", lw=0.8, alpha=0.5,
                    label=f"T = {t} ({len(curves)} seeds)" if k == 0 else None)
    ax.axhline(math.log(len(rows[0]["primitives"])), color="grey", lw=0.8, ls="--", label="uniform")
    ax.set_xlabel("search epoch")
    ax.set_ylabel("mean entropy of softmax(alpha/T)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--retrain-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch each on 64 images, tested on 32")
    parser.add_argument("--out", help="write the rows to this JSON file")
    parser.add_argument("--plot", help="write the entropy curves to this PNG file")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = tinyml.data.digits_split(0.2, seed=0)
    search_epochs, retrain_epochs = args.search_epochs, args.retrain_epochs
    if args.quick:
        (x_train, y_train), (x_test, y_test) = (x_train[:64], y_train[:64]), (x_test[:32], y_test[:32])
        search_epochs, retrain_epochs = 1, 1
    start = time.perf_counter()
    rows = []
    for seed in args.seeds:
        rows += run_temperatures(args.temperatures, data=((x_train, y_train), (x_test, y_test)),
                                 search_epochs=search_epochs, retrain_epochs=retrain_epochs, seed=seed)
    print(markdown(rows))
    print(summary(rows))
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
