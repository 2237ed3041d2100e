"""CPU kernel benchmark: tinyml's fused C++ kernels vs PyTorch eager on the same threads.

    python3 bench/cpu_kernels.py                 # all cases, 2 threads
    python3 bench/cpu_kernels.py --threads 1 --only attention layer_norm
    python3 bench/cpu_kernels.py --threads 1 --only attention --clock cpu   # on a busy machine

Each case times forward + backward through the public tinyml op (tinyml.layer_norm, ...,
Tensor.backward; the optimizer step for adamw) and the same computation in PyTorch, in one
process, on the same inputs, alternating the two, after warm-up; it reports medians in ms and
the ratio torch / tinyml (above 1: tinyml is faster), and the same ratio of the fastest runs
(less sensitive to other processes on a shared machine). With --clock cpu the times are process
CPU time instead of wall time: with 1 thread, other processes on the machine then barely move
them (with more, they also count threads that spin while they wait, as PyTorch's do). The floor is
the fastest the work could
run: bytes the kernels must move over the copy bandwidth measured here (np.copyto of 256 MiB,
counted as read + write, split over the same threads), or for attention its flops over the float32
matmul rate measured here (numpy's BLAS on the same threads). The bandwidth of this shared VM's
memory moved by 2x within minutes (np.copyto read 29 to 65 GB/s in one session while the kernels'
times held), so a bytes row also times, in the same alternation as the two frameworks, a copy that
moves the row's bytes (np.copyto of half of them, same threads): "x copy" is tinyml's median over
that copy's median, a reference taken at the same moments as the kernel on arrays of the row's size.
It is not a lower bound: the kernels, reusing the same arrays call after call, read under 1 on most rows.

Cases are entries of CASES: {"name", "shape", "setup"} with setup() -> (tinyml_fn, torch_fn, floor),
floor = ("bytes", n) or ("flops", n). Another benchmark file adds rows by defining its own CASES
list in bench/cpu_kernels_conv.py (same format); it is appended when present.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

import tinyml

F32 = 4


def _pair(shape, seed=0, scale=1.0):
    """The same random float32 array as a tinyml leaf and a torch leaf (both requiring grad)."""
    a = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    return tinyml.tensor(a.copy(), requires_grad=True), torch.tensor(a.copy(), requires_grad=True)


def _grad(shape, seed=1):
    g = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return tinyml.tensor(g), torch.from_numpy(g.copy())


def _fwd_bwd(op_t, op_p, leaves_t, leaves_p, g_t, g_p):
    def run_t():
        for x in leaves_t:
            x.grad = None
        op_t(*leaves_t).backward(g_t)

    def run_p():
        for x in leaves_p:
            x.grad = None
        op_p(*leaves_p).backward(g_p)
    return run_t, run_p


def _unary(op_t, op_p, shape, scale=1.0):
    def setup():
        (xt, xp), (gt, gp) = _pair(shape, 0, scale), _grad(shape)
        n = int(np.prod(shape))
        return (*_fwd_bwd(op_t, op_p, [xt], [xp], gt, gp), ("bytes", 5 * n * F32))  # fwd r+w, bwd 2r+w
    return setup


def _norm_setup(kind, shape):
    def setup():
        n = shape[-1]
        (xt, xp), (wt, wp), (bt, bp) = _pair(shape, 0), _pair((n,), 2), _pair((n,), 3)
        gt, gp = _grad(shape)
        if kind == "layer_norm":
            def ft(x, w, b):
                return tinyml.layer_norm(x, (n,), w, b)

            def fp(x, w, b):
                return torch.nn.functional.layer_norm(x, (n,), w, b)
            lt, lp = [xt, wt, bt], [xp, wp, bp]
        else:
            def ft(x, w):
                return tinyml.rms_norm(x, (n,), w, 1e-6)

            def fp(x, w):
                return torch.nn.functional.rms_norm(x, (n,), w, 1e-6)
            lt, lp = [xt, wt], [xp, wp]
        return (*_fwd_bwd(ft, fp, lt, lp, gt, gp), ("bytes", 5 * int(np.prod(shape)) * F32))
    return setup


def _cross_entropy_setup(n, c):
    def setup():
        (xt, xp) = _pair((n, c), 0, 2.0)
        t = np.random.default_rng(4).integers(0, c, n)
        tt, tp = tinyml.tensor(t), torch.from_numpy(t)

        def run_t():
            xt.grad = None
            tinyml.cross_entropy(xt, tt).backward()

        def run_p():
            xp.grad = None
            torch.nn.functional.cross_entropy(xp, tp).backward()
        return run_t, run_p, ("bytes", 3 * n * c * F32)  # fwd reads logits; bwd reads them, writes dlogits
    return setup


def _attention_setup(b, h, t, d):
    def setup():
        (qt, qp), (kt, kp), (vt, vp) = _pair((b, h, t, d), 0), _pair((b, h, t, d), 1), _pair((b, h, t, d), 2)
        gt, gp = _grad((b, h, t, d), 3)
        def ft(q, k, v):
            return tinyml.scaled_dot_product_attention(q, k, v, is_causal=True)

        def fp(q, k, v):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        # causal: half of each T x T product; 2 products forward, 5 backward (S again, dV, dP, dQ, dK)
        flops = 7 * (2 * t * t * d // 2) * b * h
        return (*_fwd_bwd(ft, fp, [qt, kt, vt], [qp, kp, vp], gt, gp), ("flops", flops))
    return setup


def _linear_setup(m, k, n):
    def setup():
        (xt, xp), (wt, wp), (bt, bp) = _pair((m, k), 0), _pair((n, k), 1, k ** -0.5), _pair((n,), 2)
        gt, gp = _grad((m, n), 3)
        # three GEMMs of 2 m n k flops each: y = x W^T, dx = g W, dW = g^T x (the bias sum is small)
        return (*_fwd_bwd(tinyml.nn.functional.linear, torch.nn.functional.linear, [xt, wt, bt], [xp, wp, bp],
                          gt, gp), ("flops", 6 * m * n * k))
    return setup


def _bmm_setup(b, m, k, n):
    def setup():
        (at, ap), (bt, bp) = _pair((b, m, k), 0), _pair((b, k, n), 1)
        gt, gp = _grad((b, m, n), 2)
        run_t, run_p = _fwd_bwd(tinyml.matmul, torch.matmul, [at, bt], [ap, bp], gt, gp)
        return run_t, run_p, ("flops", 6 * b * m * n * k)
    return setup


def _add_setup(shape):
    def setup():
        (at, ap), (bt, bp) = _pair(shape, 0), _pair(shape, 1)
        gt, gp = _grad(shape, 2)
        n = int(np.prod(shape))
        # forward reads two and writes one; the backward hands g to both inputs (no copy in either framework)
        run_t, run_p = _fwd_bwd(lambda a, b: a + b, lambda a, b: a + b, [at, bt], [ap, bp], gt, gp)
        return run_t, run_p, ("bytes", 3 * n * F32)
    return setup


def _adamw_setup(torch_fused: bool = False):
    # ~11M parameters shaped like a small GPT: an embedding, two blocks' matrices, biases
    shapes = [(8192, 768)] + [(768, 768)] * 8 + [(768,)] * 16

    def setup():
        pt, pp = [], []
        for i, s in enumerate(shapes):
            a, b = _pair(s, 10 + i, 0.02)
            g = np.random.default_rng(100 + i).standard_normal(s).astype(np.float32)
            a.grad, b.grad = tinyml.tensor(g), torch.from_numpy(g.copy())
            pt.append(a)
            pp.append(b)
        opt_t = tinyml.optim.AdamW(pt, lr=1e-3, weight_decay=0.1)
        opt_p = torch.optim.AdamW(pp, lr=1e-3, weight_decay=0.1, fused=torch_fused or None)
        n = sum(int(np.prod(s)) for s in shapes)
        return opt_t.step, opt_p.step, ("bytes", 7 * n * F32)  # read p, g, m, v; write p, m, v
    return setup


def _embedding_setup(vocab, dim, tokens):
    def setup():
        (wt, wp) = _pair((vocab, dim), 0, 0.02)
        ids = np.random.default_rng(5).integers(0, vocab, tokens)
        it, ip = tinyml.tensor(ids), torch.from_numpy(ids)
        gt, gp = _grad((tokens, dim), 6)
        run_t, run_p = _fwd_bwd(lambda w: tinyml.nn.functional.embedding(it, w),
                                lambda w: torch.nn.functional.embedding(ip, w), [wt], [wp], gt, gp)
        # forward reads and writes tokens rows; backward reads dy and writes the whole (vocab, dim) dweight
        return run_t, run_p, ("bytes", (3 * tokens + vocab) * dim * F32)
    return setup


CASES = [
    {"name": "layer_norm", "shape": "8192x768",
     "setup": _norm_setup("layer_norm", (8192, 768))},
    {"name": "rms_norm", "shape": "8192x768",
     "setup": _norm_setup("rms_norm", (8192, 768))},
    {"name": "softmax", "shape": "4096x1024",
     "setup": _unary(lambda x: tinyml.softmax(x, -1), lambda x: torch.softmax(x, -1), (4096, 1024))},
    {"name": "gelu (erf)", "shape": "4096x3072",
     "setup": _unary(tinyml.nn.functional.gelu, torch.nn.functional.gelu, (4096, 3072))},
    {"name": "gelu (tanh)", "shape": "4096x3072",
     "setup": _unary(lambda x: tinyml.nn.functional.gelu(x, approximate="tanh"),
                     lambda x: torch.nn.functional.gelu(x, approximate="tanh"), (4096, 3072))},
    {"name": "silu", "shape": "4096x3072",
     "setup": _unary(tinyml.nn.functional.silu, torch.nn.functional.silu, (4096, 3072))},
    {"name": "cross_entropy", "shape": "1024x50304",
     "setup": _cross_entropy_setup(1024, 50304)},
    {"name": "attention (causal)", "shape": "B4 H12 T256 D64",
     "setup": _attention_setup(4, 12, 256, 64)},
    {"name": "linear", "shape": "768x128 -> 512 (baby GPT MLP)", "setup": _linear_setup(768, 128, 512)},
    {"name": "linear", "shape": "2048x384 -> 1536 (small GPT MLP)", "setup": _linear_setup(2048, 384, 1536)},
    {"name": "matmul (batched)", "shape": "48 x (64x64 @ 64x64)", "setup": _bmm_setup(48, 64, 64, 64)},
    {"name": "add", "shape": "2048x384 (small GPT residual)", "setup": _add_setup((2048, 384))},
    {"name": "adamw step", "shape": "11.0M params, 25 tensors",
     "setup": _adamw_setup()},
    {"name": "adamw step vs torch fused=True", "shape": "11.0M params, 25 tensors",
     "setup": _adamw_setup(True)},
    {"name": "embedding", "shape": "50304x768, 8192 tokens (GPT-2 vocabulary)",
     "setup": _embedding_setup(50304, 768, 8192)},
    {"name": "embedding", "shape": "65x384, 2048 tokens (small GPT wte)",
     "setup": _embedding_setup(65, 384, 2048)},
]

try:  # rows from the conv / pool / selective-scan benchmark, when that file exists
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cpu_kernels_conv import CASES as _CONV_CASES  # type: ignore

    CASES += _CONV_CASES
except ImportError:
    pass


def copy_bandwidth(threads: int, nbytes: int = 256 << 20, reps: int = 5) -> float:
    """Bytes per second of np.copyto over a large array, read + write counted, split over
    `threads` Python threads (np.copyto releases the GIL), as the kernels split their work."""
    copy = _row_copy(2 * nbytes, threads)
    return 2 * nbytes / min(_time(copy) for _ in range(reps))


def matmul_rate(n: int = 1024, reps: int = 5) -> float:
    """float32 flops per second of numpy's matmul (BLAS) on an n x n product."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best = min(_time(lambda: a @ a) for _ in range(reps))
    return 2 * n ** 3 / best


_clock = time.perf_counter  # or time.process_time (--clock cpu) for the kernel rows


def _time(fn, clock=time.perf_counter) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def bench(case, warmup: int, reps: int, budget: float = float("inf"), threads: int = 1):
    """Medians and minima of `reps` alternating runs after `warmup` pairs. A row whose first pair of
    runs shows it would take longer than `budget` seconds gets fewer warm-up runs and reps (at least
    3), so that the full table stays well under 10 minutes (the selective_scan rows' torch loop takes
    seconds per call). A bytes row also times _row_copy of its bytes on `threads` threads after each pair.
    Returns (times, floor, reps run, the copy's median seconds or None)."""
    run_t, run_p, floor = case["setup"]()
    t0 = time.perf_counter()
    run_t()
    run_p()
    first = time.perf_counter() - t0
    affordable = int(budget / first) if first > 0 else reps
    warmup, reps = max(0, min(warmup - 1, affordable // 5)), max(3, min(reps, affordable))
    for _ in range(warmup):
        run_t()
        run_p()
    copy = _row_copy(floor[1], threads) if floor[0] == "bytes" else None
    tt, tp, tc = [], [], []
    for _ in range(reps):  # alternate, so a noisy neighbour hits both sides (and the copy) alike
        tt.append(_time(run_t, _clock))
        tp.append(_time(run_p, _clock))
        if copy is not None:
            tc.append(_time(copy, _clock))
    copy_s = float(np.median(tc)) if tc else None
    return (float(np.median(tt)), float(np.median(tp)), float(min(tt)), float(min(tp))), floor, reps, copy_s


_pools: dict = {}  # one thread pool per thread count, shared by every copy of the run


def _row_copy(nbytes: int, threads: int):
    """A function that moves nbytes (read + write: np.copyto of nbytes / 2) split over `threads` Python
    threads (np.copyto releases the GIL); timed beside a bytes row, it is that row's reference at that
    moment."""
    from concurrent.futures import ThreadPoolExecutor

    src = np.ones(max(nbytes // 2 // F32, threads), np.float32)
    dst = np.empty_like(src)
    parts = [slice(i * src.size // threads, (i + 1) * src.size // threads) for i in range(threads)]
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(threads)
    pool = _pools[threads]

    def copy():
        list(pool.map(lambda sl: np.copyto(dst[sl], src[sl]), parts))
    copy()
    return copy


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="case names (prefixes) to run")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="time the kernel rows by wall clock or by process CPU time")
    ap.add_argument("--row-budget", type=float, default=30.0,
                    help="seconds one row may take; slower rows run fewer reps (at least 3, shown)")
    args = ap.parse_args(argv)
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    tinyml.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    # the better of 1 thread and all threads: on a busy machine the second thread may not help
    bw, rate = max(copy_bandwidth(1), copy_bandwidth(args.threads)), matmul_rate()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"threads={args.threads}; torch {torch.__version__}, numpy {np.__version__}")
    print(f"kernel rows timed by {'process CPU time' if args.clock == 'cpu' else 'wall clock'}")
    print(f"copy bandwidth {bw / 1e9:.1f} GB/s (np.copyto, best of 1 and {args.threads} threads); "
          f"float32 matmul {rate / 1e9:.1f} GFLOP/s (numpy BLAS, {args.threads} threads)\n")
    print("| kernel (fwd+bwd) | shape | tinyml ms | torch ms | torch/tinyml | best-of ratio | floor ms | "
          "x copy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in CASES:
        if args.only and not any(case["name"].startswith(o) for o in args.only):
            continue
        (t, p, t_min, p_min), (kind, amount), reps, copy_s = bench(case, args.warmup, args.reps,
                                                                   args.row_budget, args.threads)
        floor = amount / (bw if kind == "bytes" else rate)
        shape = case["shape"] + (f" ({reps} reps)" if reps < args.reps else "")
        x_copy = f"{t / copy_s:.2f}" if copy_s else ""
        print(f"| {case['name']} | {shape} | {t * 1e3:.2f} | {p * 1e3:.2f} | {p / t:.2f} | "
              f"{p_min / t_min:.2f} | {floor * 1e3:.2f} ({kind}) | {x_copy} |", flush=True)


if __name__ == "__main__":
    main()
