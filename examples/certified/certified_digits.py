"""Certified training on the 8x8 digits: standard vs IBP vs SABR at two epsilons (docs/certified.md).

    python examples/certified/certified_digits.py                  # the table: 40 epochs, eps 0.1 and 0.3
    python examples/certified/certified_digits.py --quick          # seconds: a smoke run on a small subset

Prints one line per run and a markdown table; --out writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import json
import time

from tinyml.train.certified import METHODS, run_table

import tinyml


def markdown(rows: list[dict]) -> str:
    lines = ["| method | epsilon | clean | PGD | certified (IBP) | train s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['epsilon']} | {r['clean']:.3f} | {r['pgd']:.3f} | "
                     f"{r['certified']:.3f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--sabr-lambda", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 128 images, evaluated on 32")
    parser.add_argument("--out", help="write the rows to this JSON file")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = tinyml.data.digits_split(0.2, seed=0)
    eval_options = {}
    epochs, warmup, ramp = args.epochs, max(1, args.epochs // 20), args.epochs // 2
    if args.quick:
        (x_train, y_train), (x_test, y_test) = (x_train[:128], y_train[:128]), (x_test[:32], y_test[:32])
        epochs, warmup, ramp = 1, 0, 1
        eval_options = {"pgd_steps": 5, "restarts": 1}
    start = time.perf_counter()
    rows = run_table(args.epsilons, args.methods, data=((x_train, y_train), (x_test, y_test)),
                     eval_options=eval_options, epochs=epochs, warmup_epochs=warmup, ramp_epochs=ramp,
                     sabr_lambda=args.sabr_lambda, seed=args.seed)
    print(markdown(rows))
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
