"""Plot the held-out accuracy curves of examples/ssm/synthetic.py runs: one panel per task, Mamba
against S4D, accuracy at the evaluation length against the training step.

    python examples/ssm/synthetic_plot.py                    # synthetic_{task}_{model}.json -> synthetic.png
"""
from __future__ import annotations

import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = (("selective_copy", "selective copying"), ("induction", "induction heads"))
MODELS = (("mamba", "Mamba (selective)", "C0"), ("s4d", "S4D (time-invariant)", "C3"))


def load_runs(folder: str) -> dict:
    """{(task, model): run} for every synthetic_{task}_{model}.json present in `folder`."""
    runs = {}
    for task, _ in TASKS:
        for model, _, _ in MODELS:
            path = os.path.join(folder, f"synthetic_{task}_{model}.json")
            if os.path.exists(path):
                with open(path) as f:
                    runs[task, model] = json.load(f)
    return runs


def plot(runs: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(11, 4))
    for ax, (task, title) in zip(axes, TASKS):
        chance = None
        for model, label, color in MODELS:
            run = runs.get((task, model))
            if run is None:
                continue
            steps = [point[0] for point in run["curve"]]
            acc = [point[3] for point in run["curve"]]
            minutes = run["cpu_seconds"] / 60
            ax.plot(steps, acc, color=color, label=f"{label}: {acc[-1]:.3f} ({minutes:.1f} CPU min)")
            chance = 1 / 14  # data symbols 2..15 of vocab 16 in both tasks
            start = 0
            for length, n in run["stages"][:-1]:  # where the training length grows
                start += n
                ax.axvline(start, color="0.8", lw=0.8, zorder=0)
        if chance is not None:
            ax.axhline(chance, color="0.5", ls=":", lw=1, label="chance (1/14)")
        ax.axhline(0.95, color="0.5", ls="--", lw=0.8)
        ax.set_title(f"{title}, held-out accuracy at length {run['eval_length'] if run else 256}")
        ax.set_xlabel("training step (grey lines: training length grows)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        if chance is not None:
            ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=HERE, help="where the synthetic_{task}_{model}.json runs are")
    p.add_argument("--out", default=os.path.join(HERE, "synthetic.png"))
    args = p.parse_args(argv)
    runs = load_runs(args.folder)
    if not runs:
        raise SystemExit(f"synthetic_plot: no synthetic_{{task}}_{{model}}.json runs in {args.folder}")
    plot(runs, args.out)
    print(f"wrote {args.out} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
