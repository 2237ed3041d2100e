"""Figures and tables of docs/stability.md from `tinyml sweep` results (one sweep-*.json per setting in
one folder) and, optionally, a trained model for the output-head spectrum.

    python examples/mup/stability_plots.py --sweeps tinyml-sweep --out docs
    python examples/mup/stability_plots.py --sweeps tinyml-sweep --pruned tinyml-prune-demo/pruned --out docs

Writes <out>/stability_sweep.png (final loss and max attention logit against LR, the sweep's own plot),
<out>/stability_log_z.png (output log Z at the end of each run against LR) and, with --pruned,
<out>/head_spectrum.png; prints markdown tables of every run and of the LR sensitivity per setting.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil

from tinyml.models import GPT, GPTConfig
from tinyml.train.commands.sweep import plot_sweeps
from tinyml.train.softmax_bottleneck import head_spectrum, plot_head_spectra

import tinyml


def load(folder: str) -> list[dict]:
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "sweep-*.json"))):
        with open(path) as f:
            out.append(json.load(f))
    if not out:
        raise SystemExit(f"no sweep-*.json in {folder}; run tinyml sweep --out {folder} first")
    return out


def tables(results: list[dict]) -> str:
    lines = ["| setting | LR sensitivity | best loss | initial loss |", "|---|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['lr_sensitivity']:.3f} | {r['best_loss']:.3f} | "
                     f"{r['initial_loss']:.3f} |")
    lines += ["", "| setting | lr | final val loss | max attention logit | log Z mean |",
              "|---|---:|---:|---:|---:|"]
    for r in results:
        for run in r["runs"]:
            loss = "diverged" if run["diverged"] else f"{run['final_loss']:.3f}"
            logit = "-" if run["max_attn_logit"] is None else f"{run['max_attn_logit']:.1f}"
            log_z = "-" if run["log_z_mean"] is None else f"{run['log_z_mean']:.2f}"
            lines.append(f"| {r['label']} | {run['lr']:.3g} | {loss} | {logit} | {log_z} |")
    return "\n".join(lines)


def plot_log_z(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    for r in results:
        lrs = [run["lr"] for run in r["runs"]]
        log_z = [float("nan") if run["log_z_mean"] is None else run["log_z_mean"] for run in r["runs"]]
        ax.plot(lrs, log_z, "o-", label=r["label"])
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("mean output log Z at the end")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweeps", required=True, help="folder of tinyml sweep results")
    p.add_argument("--pruned", help="a save_pruned folder (examples/pruning/demo.py) for the head spectrum")
    p.add_argument("--out", default="docs")
    args = p.parse_args(argv)
    results = load(args.sweeps)
    os.makedirs(args.out, exist_ok=True)
    shutil.copyfile(plot_sweeps(args.sweeps), os.path.join(args.out, "stability_sweep.png"))
    plot_log_z(results, os.path.join(args.out, "stability_log_z.png"))
    print(tables(results))
    if args.pruned:
        from tinyml.train.pruning import load_pruned

        trained = load_pruned(args.pruned)
        tinyml.manual_seed(1337)
        init = GPT(GPTConfig(**{k: v for k, v in trained.config.to_dict().items()
                                if k not in ("layer_heads", "layer_inner")}))
        reports = {"at initialisation": head_spectrum(init),
                   "trained (Adapt-Pruner demo)": head_spectrum(trained)}
        plot_head_spectra(reports, os.path.join(args.out, "head_spectrum.png"))
        for label, rep in reports.items():
            print(f"head {rep['shape']}: {label}: effective rank {rep['effective_rank']:.1f} of "
                  f"{rep['max_rank']}, sigma_min/sigma_max {rep['normalised'][-1]:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
