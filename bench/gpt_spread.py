"""The run-to-run spread of the GPT training step: which side moves, and how (docs/gpt_step_cpu.md).

    python bench/gpt_spread.py                      # baby, compiled, 6 alternating tinyml/torch runs
    python bench/gpt_spread.py --runs 10 --steps 60 --json /tmp/spread.json
    python bench/gpt_spread.py --env GOMP_SPINCOUNT=3000     # a variable for tinyml's worker only
    python bench/gpt_spread.py --ab TINYML_KEEP_AWAKE=0      # each run also a tinyml worker with it ("B")

Each run starts bench/gpt_cpu.py's two workers one after the other (tinyml compiled, then PyTorch eager,
the same weights and batches) and prints, per framework, its per-step wall times (min, median, 90th
percentile, max, in ms), the median process CPU per step, and per step the process's minor page faults
and voluntary / involuntary context switches (getrusage, all threads). A slow run whose minimum is
also high is slower in every step (a different machine state: clock, placement, a neighbour); a slow
run with a normal minimum and a high median or p90 has outlier steps (wake-ups, time slices). The
summary gives the ratio of medians per run (what bench/gpt_cpu.py reports) and each side's spread
over the runs. The load average of each run is printed: spread figures need a quiet machine. With --ab
each run starts a second tinyml worker with the given variables right after the first (row "B"):
an interleaved A/B of a setting, compared run by run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gpt_cpu import CONFIGS  # noqa: E402


def worker(framework: str, config: str, steps: int, threads: int, weights: str, compiled: bool,
           env: dict) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "gpt_cpu.py"), "--worker", framework, "--config", config,
           "--steps", str(steps), "--threads", str(threads), "--weights", weights]
    cmd += ["--compile"] if compiled else []
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if out.returncode != 0:
        raise RuntimeError(f"{framework} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def summary(result: dict) -> dict:
    """Per-step figures of one worker's timed steps (the 2 warm-up steps dropped)."""
    times = sorted(1e3 * t for t in result["times"][2:])
    events = result["events"][2:]
    return {
        "min": times[0], "median": statistics.median(times), "max": times[-1],
        "p90": times[min(len(times) - 1, int(0.9 * len(times)))],
        "cpu": 1e3 * statistics.median(result["cpu_times"][2:]),
        "faults": statistics.median(e[0] for e in events),
        "vcsw": statistics.median(e[1] for e in events),
        "ivcsw": statistics.median(e[2] for e in events),
    }


def line(name: str, s: dict) -> str:
    return (f"{name:<7}{s['min']:>7.1f}{s['median']:>8.1f}{s['p90']:>7.1f}{s['max']:>7.1f}{s['cpu']:>8.1f}"
            f"{s['faults']:>8.0f}{s['vcsw']:>7.0f}{s['ivcsw']:>7.0f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="baby")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run (after 2 warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eager", action="store_true", help="tinyml eager instead of tinyml.compile")
    parser.add_argument("--no-torch", action="store_true", help="tinyml runs only")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable for tinyml's worker only (repeatable)")
    parser.add_argument("--ab", action="append", default=[], metavar="NAME=VALUE",
                        help="also run tinyml with this variable in each run, as row B (repeatable)")
    parser.add_argument("--json", help="write every run's per-step times and events here")
    args = parser.parse_args(argv)
    env = dict(kv.split("=", 1) for kv in args.env)
    env_b = {**env, **dict(kv.split("=", 1) for kv in args.ab)} if args.ab else None
    print(f"{args.config}, {args.threads} threads, {args.steps} steps per run, tinyml "
          f"{'eager' if args.eager else 'compiled'}{' ' + str(env) if env else ''}"
          f"{'; B: ' + str(env_b) if env_b else ''}")
    print(f"{'run':<5}{'':<7}{'min':>7}{'median':>8}{'p90':>7}{'max':>7}{'CPU':>8}{'faults':>8}"
          f"{'vcsw':>7}{'ivcsw':>7}  (ms per step; events per step; load)")
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            weights = os.path.join(tmp, "init.safetensors")
            load = os.getloadavg()[0]
            mine = worker("tinyml", args.config, args.steps, args.threads, weights, not args.eager, env)
            other = (worker("tinyml", args.config, args.steps, args.threads, weights, not args.eager, env_b)
                     if env_b else None)
            peer = None if args.no_torch else worker("torch", args.config, args.steps, args.threads,
                                                     weights, False, {})
        run = {"load": load, "tinyml": mine, "B": other, "torch": peer}
        runs.append(run)
        s = summary(mine)
        print(f"{i:<5}" + line("tinyml", s) + f"  load {load:.1f}", flush=True)
        if other is not None:
            b = summary(other)
            print(f"{'':<5}" + line("B", b) + f"  B / tinyml medians {b['median'] / s['median']:.2f}",
                  flush=True)
        if peer is not None:
            t = summary(peer)
            print(f"{'':<5}" + line("torch", t) + f"  ratio of medians {t['median'] / s['median']:.2f}",
                  flush=True)
    for name in ("tinyml", "B", "torch"):
        if runs[0][name] is None:
            continue
        sums = [summary(r[name]) for r in runs]
        medians, mins = [s["median"] for s in sums], [s["min"] for s in sums]
        print(f"{name}: median per run {min(medians):.1f}-{max(medians):.1f} ms "
              f"(spread {max(medians) / min(medians):.2f}x), min per run {min(mins):.1f}-{max(mins):.1f}")
    if not args.no_torch:
        ratios = [summary(r["torch"])["median"] / summary(r["tinyml"])["median"] for r in runs]
        print(f"ratio torch/tinyml per run: {' '.join(f'{r:.2f}' for r in ratios)}; "
              f">= 1.2 in {sum(r >= 1.2 for r in ratios)} of {len(ratios)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f)


if __name__ == "__main__":
    main()
