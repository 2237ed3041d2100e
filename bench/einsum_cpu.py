"""CPU benchmark of tinyml.einsum (ops/einsum.py: greedy path over matmuls) vs torch.einsum.

    python3 bench/einsum_cpu.py                  # all equations, 2 threads
    python3 bench/einsum_cpu.py --threads 1 --only attn

Each equation runs tinyml.einsum and torch.einsum on the same float32 inputs in one process,
alternating the two after warm-up (both libraries share one libgomp: see DESIGN.md), under no_grad
unless the name says fwd+bwd. It prints median wall times in ms, the ratio torch / tinyml (above 1:
tinyml is faster), the ratio of median process CPU times, and the floor: the flops of the
contraction path over the float32 matmul rate measured here.
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
from cpu_kernels import matmul_rate

import tinyml

# (name, equation, operand shapes, flops of the best path: 2 * multiply-adds)
CASES = [
    ("matmul", "ij,jk->ik", [(512, 512), (512, 512)], 2 * 512 ** 3),
    ("attn scores", "bhqd,bhkd->bhqk", [(8, 8, 128, 64), (8, 8, 128, 64)], 2 * 64 * 128 * 128 * 64),
    ("batched transpose-out", "bij,bjk->bki", [(32, 64, 128), (32, 128, 64)], 2 * 32 * 64 * 128 * 64),
    ("chain thin-middle", "ij,jk,kl->il", [(256, 256), (256, 8), (8, 256)],
     2 * (256 * 256 * 8 + 256 * 8 * 256)),
    ("bilinear", "bn,anm,bm->ba", [(64, 32), (16, 32, 32), (64, 32)], 2 * (64 * 32 * 16 * 32 + 64 * 16 * 32)),
    ("trace-diag", "bii->b", [(64, 128, 128)], 64 * 128),
    ("outer", "i,j->ij", [(1024,), (1024,)], 1024 * 1024),
    ("attn scores fwd+bwd", "bhqd,bhkd->bhqk", [(8, 8, 128, 64), (8, 8, 128, 64)],
     3 * 2 * 64 * 128 * 128 * 64),
]


def _setup(eq, shapes, backward):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    xt = [tinyml.tensor(a.copy(), requires_grad=backward) for a in arrays]
    xp = [torch.tensor(a.copy(), requires_grad=backward) for a in arrays]

    def run_t():
        if backward:
            tinyml.einsum(eq, *xt).sum().backward()
        else:
            with tinyml.no_grad():
                tinyml.einsum(eq, *xt)

    def run_p():
        if backward:
            torch.einsum(eq, *xp).sum().backward()
        else:
            with torch.no_grad():
                torch.einsum(eq, *xp)
    return run_t, run_p


def bench(run_t, run_p, warmup: int, reps: int):
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
    return {k: (float(np.median(w)), float(np.median(c))) for k, (w, c) in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="case names (prefixes) to run")
    args = ap.parse_args(argv)
    tinyml.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rate = matmul_rate()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"threads={args.threads}; torch {torch.__version__}, numpy {np.__version__}; "
          f"float32 matmul {rate / 1e9:.1f} GFLOP/s\n")
    print("| equation (float32) | shapes | tinyml ms | torch ms | torch/tinyml | CPU-time ratio | floor ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, eq, shapes, flops in CASES:
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        run_t, run_p = _setup(eq, shapes, "fwd+bwd" in name)
        med = bench(run_t, run_p, args.warmup, args.reps)
        (t, t_cpu), (p, p_cpu) = med["t"], med["p"]
        print(f"| {name} `{eq}` | {', '.join(str(s) for s in shapes)} | {t * 1e3:.3f} | {p * 1e3:.3f} | "
              f"{p / t:.2f} | {p_cpu / t_cpu:.2f} | {flops / rate * 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
