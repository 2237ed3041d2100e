"""Framework overhead: a chain of 100 small elementwise ops, forward and backward, tinyml vs PyTorch.

    python3 bench/overhead.py [--numel 64] [--repeats 200] [--profile] [--per-op]

On tensors this small the arithmetic costs almost nothing; what is timed is the framework: op
dispatch, type promotion, graph recording and the backward walk. Both libraries run the same
Python code (`chain`) on the same inputs in one process, PyTorch eager on the same threads
(torch.set_num_threads(2)), alternating run by run. Reported: medians after warm-up, in
microseconds per op, the ratio PyTorch / tinyml (as every table in docs/benchmarks.md) and its
inverse, tinyml's time as a multiple of PyTorch's (issue 16's goal: at most 1.0x for forward +
backward). The clock is the process CPU time, so that other processes on a shared machine do not
land inside the timings (--wall-clock for perf_counter). `--profile` prints tinyml's cProfile hot
spots instead; `--per-op` times a chain of 100 of each kind of op of `chain` on its own (forward
recording, then backward), which shows which ops the gap to PyTorch comes from.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tinyml

N_OPS = 100


def chain(x, w):
    """100 mixed elementwise ops: tensor-tensor and tensor-scalar arithmetic, unary math, max."""
    h = x
    for _ in range(N_OPS // 10):
        h = h * w
        h = h + 0.5
        h = h.tanh()
        h = h - w
        h = h * 0.9
        h = h.sigmoid()
        h = h / 1.5
        h = h.exp()
        h = h.maximum(w)
        h = h + x
    return h


# one step of each kind in `chain`, for --per-op (exp of a scaled input: 100 exps in a row overflow)
STEPS = {"mul": lambda h, x, w: h * w, "add scalar": lambda h, x, w: h + 0.5,
         "tanh": lambda h, x, w: h.tanh(), "sub": lambda h, x, w: h - w,
         "mul scalar": lambda h, x, w: h * 0.9,
         "sigmoid": lambda h, x, w: h.sigmoid(), "div scalar": lambda h, x, w: h / 1.5,
         "exp": lambda h, x, w: (h * 0.01).exp(), "maximum": lambda h, x, w: h.maximum(w),
         "add": lambda h, x, w: h + x}


def per_op(libs, repeats: int, warmup: int, clock) -> None:
    """For each kind of step: median us per step of 100 in a row, forward (recording) and backward."""
    print("| step | tinyml fwd / bwd us | PyTorch fwd / bwd us | tinyml fwd+bwd vs PyTorch's |")
    print("|---|---|---|---|")
    for name, step in STEPS.items():
        times = [([], []) for _ in libs]
        for i in range(warmup + repeats):
            for j, (lib, x, w) in enumerate(libs):
                x.grad = w.grad = None
                t0 = clock()
                h = x
                for _ in range(N_OPS):
                    h = step(h, x, w)
                h = h.sum()
                t1 = clock()
                h.backward()
                t2 = clock()
                if i >= warmup:
                    times[j][0].append(t1 - t0)
                    times[j][1].append(t2 - t1)
        (f0, b0), (f1, b1) = ([statistics.median(t) / N_OPS * 1e6 for t in pair] for pair in times)
        print(f"| {name} | {f0:.2f} / {b0:.2f} | {f1:.2f} / {b1:.2f} | {(f0 + b0) / (f1 + b1):.2f}x |")


def _passes(lib, x, w):
    """The three timed passes: forward without a graph, forward recording one, forward + backward."""
    def forward():
        with lib.no_grad():
            chain(x, w)

    def forward_recorded():
        chain(x, w)

    def forward_backward():
        x.grad = w.grad = None
        chain(x, w).sum().backward()

    return forward, forward_recorded, forward_backward


def measure(libs, repeats: int, warmup: int, clock) -> list[list[float]]:
    """Median seconds of each pass for each (lib, x, w). The libraries alternate run by run, so a
    shared machine's load falls on both alike."""
    passes = [_passes(*lib) for lib in libs]
    result = []
    for k in range(3):
        times = [[] for _ in libs]
        for i in range(warmup + repeats):
            for j, p in enumerate(passes):
                t0 = clock()
                p[k]()
                if i >= warmup:
                    times[j].append(clock() - t0)
        result.append([statistics.median(t) for t in times])
    fwd, rec, both = result
    # backward alone: forward+backward minus the recorded forward
    return [[fwd[j], rec[j], both[j] - rec[j]] for j in range(len(libs))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--per-op", action="store_true", help="time each kind of op of the chain on its own")
    ap.add_argument("--wall-clock", action="store_true",
                    help="time with perf_counter instead of the process CPU clock (fine on an idle machine; "
                         "on a shared one, preemption lands inside the timed region)")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    xs, ws = (rng.standard_normal(args.numel).astype(np.float32) for _ in range(2))
    xt, wt = tinyml.tensor(xs, requires_grad=True), tinyml.tensor(ws, requires_grad=True)

    if args.profile:
        import cProfile
        import pstats

        def loop():
            for _ in range(args.repeats):
                xt.grad = wt.grad = None
                chain(xt, wt).sum().backward()

        loop()
        cProfile.runctx("loop()", globals(), {"loop": loop}, "/tmp/overhead.prof")
        pstats.Stats("/tmp/overhead.prof").sort_stats("tottime").print_stats(25)
        return

    import torch

    torch.set_num_threads(2)
    xp, wp = torch.tensor(xs, requires_grad=True), torch.tensor(ws, requires_grad=True)
    clock = time.perf_counter if args.wall_clock else time.process_time
    if args.per_op:
        print(f"{N_OPS} steps of each kind on {args.numel} float32 elements; medians of {args.repeats} runs; "
              f"load average {os.getloadavg()[0]:.1f}")
        per_op([(tinyml, xt, wt), (torch, xp, wp)], args.repeats, args.warmup, clock)
        return
    tm, th = measure([(tinyml, xt, wt), (torch, xp, wp)], args.repeats, args.warmup, clock)
    print(f"chain of {N_OPS} elementwise ops on {args.numel} float32 elements; medians of {args.repeats} "
          f"runs ({'wall clock' if args.wall_clock else 'process CPU time'}), torch {torch.__version__} on "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}")
    print("| pass | tinyml us/op | PyTorch us/op | ratio (PyTorch / tinyml) | tinyml time vs PyTorch's |")
    print("|---|---|---|---|---|")
    rows = ("forward, no_grad", "forward, recording the graph", "backward", "forward + backward (training)")
    for label, a, b in zip(rows, tm + [tm[1] + tm[2]], th + [th[1] + th[2]]):
        print(f"| {label} | {a / N_OPS * 1e6:.2f} | {b / N_OPS * 1e6:.2f} | {b / a:.2f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
