"""GPT vs Mamba vs S4D as character language models on the bundled Shakespeare, per minute of CPU.

Runs `tinyml train --model gpt|mamba|s4d` (the baby preset: context 64, batch 12, AdamW 1e-3 with
warmup and cosine decay; models of about 0.7-0.8M parameters, train/presets.py) for the same number
of steps, each in a child process, and reads back the validation losses of metrics.jsonl. The CPU
time of each run (user + system of the child, from getrusage: what it costs on a shared machine,
where wall time mostly measures the other jobs) is spread evenly over its steps to put the
validation losses on a CPU-minutes axis.

    python examples/ssm/shakespeare.py --steps 400 --eval-interval 100 --out shakespeare.png
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(family: str, steps: int, eval_interval: int, eval_iters: int, folder: str) -> dict:
    out = os.path.join(folder, family)
    before = cpu_seconds()
    cmd = [sys.executable, "-m", "tinyml.train.cli", "train", "--model", family, "--steps", str(steps),
           "--eval-interval", str(eval_interval), "--eval-iters", str(eval_iters), "--device", "cpu",
           "--sample-tokens", "0", "--out", out]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{family}: {done.stderr}")
    cpu = cpu_seconds() - before
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    vals = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    params = next(line for line in done.stdout.splitlines() if line.startswith("tinyml train:"))
    return {"cpu_s": cpu, "val": vals, "header": params}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--models", nargs="+", default=["gpt", "mamba", "s4d"])
    p.add_argument("--out", default="shakespeare.png")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for family in args.models:
            r = results[family] = run(family, args.steps, args.eval_interval, args.eval_iters, folder)
            per_step = r["cpu_s"] / args.steps
            print(r["header"], flush=True)
            curve = ", ".join(f"{v:.3f} @ {s} ({s * per_step / 60:.1f} min)" for s, v in r["val"])
            print(f"{family}: {r['cpu_s'] / 60:.1f} CPU minutes, {1e3 * per_step:.0f} ms CPU/step; "
                  f"val loss {curve}", flush=True)
    with open(args.out.rsplit(".", 1)[0] + ".json", "w") as f:
        json.dump({**results, "steps": args.steps}, f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for family, r in results.items():
        per_step = r["cpu_s"] / args.steps / 60
        ax.plot([s * per_step for s, _ in r["val"]], [v for _, v in r["val"]], marker="o", label=family)
    ax.set(xlabel="CPU minutes", ylabel="validation loss (nats/char)", title="baby preset on Shakespeare")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
