"""CPU benchmark of the sort family: tinyml's C++ kernels (csrc/sort.cpp) vs PyTorch eager.

    python3 bench/sort_cpu.py                    # all cases, 2 threads
    python3 bench/sort_cpu.py --threads 1 --only topk

Each case runs the public op (tinyml.sort / topk / kthvalue / median) and torch's on the same
float32 input in one process, alternating the two after warm-up, under no_grad unless the name
says fwd+bwd. It prints median wall times in ms, the ratio torch / tinyml (above 1: tinyml is
faster), and the same ratio of the median process CPU times (all threads' CPU seconds: on a
machine shared with other jobs, wall time mostly measures the waiting, CPU time the work), and
the floor: the bytes the kernel must move (read x; write values and int64 indices) over the copy
bandwidth measured here. Sorting is compute-bound, so the floor is far below both.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from cpu_kernels import copy_bandwidth

import tinyml

F32, I64 = 4, 8


def _case(name, shape, op_t, op_p, out_cols, backward=False):
    """A CASES entry (bench/cpu_kernels.py's format): op over the last dim of a (rows, n) input."""
    def setup():
        a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        xt = tinyml.tensor(a.copy(), requires_grad=backward)
        xp = torch.tensor(a.copy(), requires_grad=backward)

        def run_t():
            if backward:
                xt.grad = None
                op_t(xt).sum().backward()
            else:
                with tinyml.no_grad():
                    op_t(xt)

        def run_p():
            if backward:
                xp.grad = None
                op_p(xp).sum().backward()
            else:
                with torch.no_grad():
                    op_p(xp)
        rows = shape[0]
        moved = rows * shape[1] * F32 + rows * out_cols * (F32 + I64)
        return run_t, run_p, ("bytes", moved * (2 if backward else 1))
    return {"name": name, "shape": shape, "setup": setup}


def _cases():
    cases = []
    for shape in ((4096, 64), (256, 1024), (16, 65536), (1, 1 << 20)):
        cases.append(_case("sort", shape, lambda x: x.sort(-1).values, lambda x: x.sort(-1).values, shape[1]))
    cases.append(_case("sort fwd+bwd", (256, 1024), lambda x: x.sort(-1).values, lambda x: x.sort(-1).values,
                       1024, backward=True))
    for shape, k in (((4096, 64), 5), ((256, 1024), 10), ((16, 65536), 100), ((1, 1 << 20), 1000)):
        cases.append(_case(f"topk k={k}", shape, lambda x, k=k: x.topk(k).values,
                           lambda x, k=k: x.topk(k).values, k))
    cases.append(_case("topk k=10 fwd+bwd", (256, 1024), lambda x: x.topk(10).values,
                       lambda x: x.topk(10).values, 10, backward=True))
    cases.append(_case("kthvalue k=n/4", (256, 1024), lambda x: x.kthvalue(256).values,
                       lambda x: x.kthvalue(256).values, 1))
    cases.append(_case("median dim", (256, 1024), lambda x: x.median(-1).values,
                       lambda x: x.median(-1).values, 1))
    return cases


CASES = _cases()


def bench(case, warmup: int, reps: int):
    """(median wall s, median CPU s) for tinyml and torch, alternating runs; and the floor."""
    run_t, run_p, floor = case["setup"]()
    for _ in range(warmup):
        run_t()
        run_p()
    times = {"t": ([], []), "p": ([], [])}
    for _ in range(reps):
        for key, fn in (("t", run_t), ("p", run_p)):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[key][0].append(time.perf_counter() - w0)
            times[key][1].append(time.process_time() - c0)
    med = {k: (float(np.median(w)), float(np.median(c))) for k, (w, c) in times.items()}
    return med["t"], med["p"], floor


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="case names (prefixes) to run")
    args = ap.parse_args(argv)
    tinyml.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    bw = max(copy_bandwidth(1), copy_bandwidth(args.threads))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"threads={args.threads}; torch {torch.__version__}, numpy {np.__version__}; "
          f"copy bandwidth {bw / 1e9:.1f} GB/s\n")
    print("| op (float32, last dim) | shape | tinyml ms | torch ms | torch/tinyml | CPU-time ratio "
          "| floor ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for case in CASES:
        if args.only and not any(case["name"].startswith(o) for o in args.only):
            continue
        (t, t_cpu), (p, p_cpu), (_, amount) = bench(case, args.warmup, args.reps)
        print(f"| {case['name']} | {case['shape']} | {t * 1e3:.2f} | {p * 1e3:.2f} | {p / t:.2f} | "
              f"{p_cpu / t_cpu:.2f} | {amount / bw * 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
