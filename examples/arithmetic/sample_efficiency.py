"""The sample-efficiency curve of "Teaching Arithmetic to Small Transformers" (Lee et al. 2023,
Figure 3) at CPU scale: held-out exact match of a small GPT against the number of training problems,
one line per data format (plain, reverse, simplified scratchpad, detailed scratchpad).

    python examples/arithmetic/sample_efficiency.py --digits 2 --samples 250 1000 4000 \\
        --formats plain reverse simple --steps 800

writes --json (every run's accuracy, after each run, so a cut-short sweep keeps what it has) and
--plot. Every run has the same steps, batch, model and test problems; only format and size differ.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from tinyml.train.tasks.arithmetic_run import ArithmeticRun, train_arithmetic


def plot(results: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for fmt in dict.fromkeys(r["fmt"] for r in results):
        rows = sorted((r["samples"], 100 * r["accuracy"]) for r in results if r["fmt"] == fmt)
        ax.plot([s for s, _ in rows], [a for _, a in rows], marker="o", label=fmt)
    ax.set_xscale("log")
    sizes = sorted({r["samples"] for r in results})
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training problems")
    ax.set_ylabel("held-out exact match (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digits", type=int, default=2)
    p.add_argument("--samples", type=int, nargs="+", default=[250, 1000, 4000])
    p.add_argument("--formats", nargs="+", default=["plain", "reverse", "simple"])
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--test-samples", type=int, default=300)
    p.add_argument("--json", default="examples/arithmetic/results/sample_efficiency.json")
    p.add_argument("--plot", default="docs/arithmetic_sample_efficiency.png")
    args = p.parse_args()
    results = []
    for n in args.samples:
        for fmt in args.formats:
            t = time.perf_counter()
            spec = ArithmeticRun(fmt=fmt, digits=args.digits, samples=n, test_samples=args.test_samples,
                                 steps=args.steps, batch_size=args.batch_size, lr=2e-3, n_layer=args.layers,
                                 n_head=2, n_embd=args.width, eval_interval=args.steps, progress=False)
            r = train_arithmetic(spec)
            results.append({"fmt": fmt, "samples": n, "accuracy": r["accuracy"],
                            "final_loss": r["final_loss"],
                            "seconds": round(time.perf_counter() - t, 1), "load": os.getloadavg()[0]})
            print(json.dumps(results[-1]), flush=True)
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "results": results}, f, indent=1)
            plot(results, args.plot, f"{args.digits}-digit addition, GPT {args.layers}x{args.width}, "
                                             f"{args.steps} steps of {args.batch_size}")


if __name__ == "__main__":
    main()
