"""The state space model kernels on the CPU: tinyml vs its PyTorch peers, side by side in one run.

    python3 bench/ssm_scan.py                      # 2 threads, every row
    python3 bench/ssm_scan.py --only causal        # rows whose name starts with "causal"

Rows (ratio = peer ms / tinyml ms; > 1: tinyml is faster):
- selective_scan vs a PyTorch loop over time: mamba_ssm's selective_scan_ref (softplus(delta +
  bias), exp(delta A) and delta B u for every step up front, then a Python loop over time with
  autograd through it; the per-step C contraction as a multiply-sum), at B2 D256 N16 L256 and
  (forward) B2 D512 N16 L1024. Goals: forward >= 20x, forward+backward >= 100x.
- selective_scan vs mambapy's parallel scan (Blelloch, in PyTorch: pscan over (B, L, D, N)), the
  usual CPU alternative; its inputs are given in its own (B, L, D) layout, so no transpose is timed.
  Goal >= 1x. Needs `pip install mambapy` (a bench-only peer; the row is skipped without it).
- causal_conv1d (the depthwise conv of Mamba with its fused SiLU) vs F.conv1d(groups=D,
  padding=K-1) sliced to L, then F.silu.

The two frameworks alternate in one process on the same threads and the same OpenMP runtime, with
passive waiting (OMP_WAIT_POLICY=PASSIVE unless set; a noisy neighbour hits both alike). Medians of
--reps runs after --warmup runs, of wall-clock time and of the process's CPU time (the second ratio
moves less when other jobs share the machine; the load average is printed before and after).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# torch and tinyml share one libgomp, which reads its wait policy when the first of them loads it:
# tinyml's passive policy (DESIGN.md, "One CPU thread pool") for both, else the threads of whichever
# framework just ran spin and take the cores (on a busy machine a 1 ms kernel then costs 15 ms of CPU)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as TF

import tinyml

try:
    from mambapy.pscan import pscan
except ImportError:  # the row is skipped
    pscan = None


def _arr(shape, seed, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)


def _pair(a):
    return tinyml.tensor(a.copy(), requires_grad=True), torch.tensor(a.copy(), requires_grad=True)


def _runner(fn, leaves, grad, lib):
    """One call of fn on the leaves: forward only (grad None) or forward + backward(grad)."""
    no_grad = tinyml.no_grad if lib is tinyml else torch.no_grad

    def run():
        for x in leaves:
            x.grad = None
        if grad is None:
            with no_grad():
                fn(*leaves)
        else:
            fn(*leaves).backward(grad)
    return run


def torch_scan_loop(u, delta, A, B, C, D, z, delta_bias):
    """mamba_ssm's selective_scan_ref (real A, B/C (batch, N, L), delta_softplus=True, D, z)."""
    delta = TF.softplus(delta + delta_bias[..., None])
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_bu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = u.new_zeros((u.shape[0], A.shape[0], A.shape[1]))
    ys = []
    for i in range(u.shape[2]):
        x = delta_a[:, :, i] * x + delta_bu[:, :, i]
        ys.append((x * C[:, None, :, i]).sum(-1))
    return (torch.stack(ys, dim=2) + u * D[:, None]) * TF.silu(z)


def mambapy_scan(u, delta, A, B, C, D, z, delta_bias):
    """mambapy's Mamba.selective_scan with its pscan, in its layout: u, delta, z (B, L, D); B, C (B, L, N)."""
    delta = TF.softplus(delta + delta_bias)
    delta_a = torch.exp(delta.unsqueeze(-1) * A)  # (B, L, D, N)
    bx = (delta.unsqueeze(-1) * B.unsqueeze(2)) * u.unsqueeze(-1)
    hs = pscan(delta_a, bx)
    y = (hs @ C.unsqueeze(-1)).squeeze(3) + D * u
    return y * TF.silu(z)


def _scan_inputs(b, d, n, length):
    return {"u": _arr((b, d, length), 0), "delta": _arr((b, d, length), 2, 0.5, -1.0),
            "A": -np.exp(_arr((d, n), 3, 0.5)), "B": _arr((b, n, length), 4), "C": _arr((b, n, length), 5),
            "D": _arr((d,), 6), "z": _arr((b, d, length), 1), "delta_bias": _arr((d,), 7, 0.1)}


def _tinyml_scan(*a):
    return tinyml.selective_scan(*a, delta_softplus=True)


def scan_vs_loop(b, d, n, length, backward):
    def setup():
        arrs = _scan_inputs(b, d, n, length)
        pairs = [_pair(v) for v in arrs.values()]
        g = _arr((b, d, length), 9) if backward else None
        g_t, g_p = (None, None) if g is None else (tinyml.tensor(g), torch.tensor(g))
        return (_runner(_tinyml_scan, [p[0] for p in pairs], g_t, tinyml),
                _runner(torch_scan_loop, [p[1] for p in pairs], g_p, torch))
    return setup


def scan_vs_mambapy(b, d, n, length, backward):
    def setup():
        arrs = _scan_inputs(b, d, n, length)
        leaves_t = [tinyml.tensor(v, requires_grad=True) for v in arrs.values()]
        peer = dict(arrs)
        for k in ("u", "delta", "z", "B", "C"):  # (B, ., L) -> (B, L, .): the peer's own layout
            peer[k] = np.ascontiguousarray(arrs[k].transpose(0, 2, 1))
        leaves_p = [torch.tensor(v, requires_grad=True) for v in peer.values()]
        g = _arr((b, d, length), 9) if backward else None
        g_p = None if g is None else torch.tensor(np.ascontiguousarray(g.transpose(0, 2, 1)))
        return (_runner(_tinyml_scan, leaves_t, None if g is None else tinyml.tensor(g), tinyml),
                _runner(mambapy_scan, leaves_p, g_p, torch))
    return setup


def conv_vs_torch(b, d, length, k, backward):
    def setup():
        shapes = ((b, d, length), (d, k), (d,))
        (xt, xp), (wt, wp), (bt, bp) = (_pair(_arr(s, i)) for i, s in enumerate(shapes))
        g = _arr((b, d, length), 9) if backward else None

        def peer(x, w, bias):
            return TF.silu(TF.conv1d(x, w[:, None], bias, padding=k - 1, groups=d)[..., :length])

        return (_runner(lambda x, w, bias: tinyml.causal_conv1d(x, w, bias, "silu"), [xt, wt, bt],
                        None if g is None else tinyml.tensor(g), tinyml),
                _runner(peer, [xp, wp, bp], None if g is None else torch.tensor(g), torch))
    return setup


SCAN = (2, 256, 16, 256)  # batch, channels, states, length (a power of two: mambapy's pscan pads to one)
SCAN_SHAPE = "B{} D{} N{} L{}".format(*SCAN)
SCAN_LONG = (2, 512, 16, 1024)
SCAN_LONG_SHAPE = "B{} D{} N{} L{}".format(*SCAN_LONG)
CONV = (4, 1024, 1024, 4)  # batch, channels, length, width
CONV_SHAPE = "B{} D{} L{} K{}".format(*CONV)
CASES = [
    ("selective_scan fwd vs torch loop", SCAN_SHAPE, scan_vs_loop(*SCAN, False)),
    ("selective_scan fwd+bwd vs torch loop", SCAN_SHAPE, scan_vs_loop(*SCAN, True)),
    ("selective_scan fwd vs torch loop", SCAN_LONG_SHAPE, scan_vs_loop(*SCAN_LONG, False)),
    ("selective_scan fwd vs mambapy pscan", SCAN_SHAPE, scan_vs_mambapy(*SCAN, False)),
    ("selective_scan fwd+bwd vs mambapy pscan", SCAN_SHAPE, scan_vs_mambapy(*SCAN, True)),
    ("causal_conv1d+silu fwd vs torch conv1d", CONV_SHAPE, conv_vs_torch(*CONV, False)),
    ("causal_conv1d+silu fwd+bwd vs torch conv1d", CONV_SHAPE, conv_vs_torch(*CONV, True)),
]


def _time(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process: every thread of both frameworks' pools)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="row names (prefixes) to run")
    args = ap.parse_args(argv)
    tinyml.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"threads={args.threads}; torch {torch.__version__}, numpy {np.__version__}, "
          f"mambapy {'yes' if pscan else 'not installed'}; load average {_load()} at the start\n")
    print("ratio = peer / tinyml (> 1: tinyml is faster); wall: medians of wall-clock time; cpu: medians of "
          "the process's CPU time over the same runs (less sensitive to a busy machine)\n")
    print("| row | shape | tinyml ms | peer ms | peer/tinyml | tinyml cpu ms | peer cpu ms | cpu ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, shape, setup in CASES:
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        if "mambapy" in name and pscan is None:
            print(f"| {name} | {shape} | | | skipped: pip install mambapy | | | |")
            continue
        run_t, run_p = setup()
        for _ in range(args.warmup):
            run_t()
            run_p()
        tt, tp = [], []
        for _ in range(args.reps):  # alternate, so a noisy neighbour hits both sides alike
            tt.append(_time(run_t))
            tp.append(_time(run_p))
        (t, tc), (p, pc) = np.median(tt, axis=0), np.median(tp, axis=0)
        print(f"| {name} | {shape} | {t * 1e3:.2f} | {p * 1e3:.2f} | {p / t:.2f} | {tc * 1e3:.2f} | "
              f"{pc * 1e3:.2f} | {pc / tc:.2f} |", flush=True)
    print(f"\nload average {_load()} at the end")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


if __name__ == "__main__":
    main()
