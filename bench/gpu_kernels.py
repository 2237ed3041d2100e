"""GPU kernels: tinyml's Triton kernels against PyTorch eager on the same GPU, side by side.

    python bench/gpu_kernels.py            # on a machine with a GPU (needs torch with CUDA)
    TRITON_INTERPRET=1 python bench/gpu_kernels.py --smoke    # tiny shapes, checks the script runs

Each row times forward+backward (or the step) with CUDA events after warm-up and reports the
median of both, the ratio torch/tinyml (> 1: tinyml faster) and the floor: bytes moved over
the copy bandwidth measured in this run, or flops over the measured bf16 matmul rate.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

import tinyml
import tinyml.nn.functional as F


def time_tinyml(fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = tinyml.cuda.Event(), tinyml.cuda.Event()
        start.record()
        fn()
        end.record()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_torch(torch, fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    if not torch.cuda.is_available():
        import time

        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth(nbytes: int, reps: int) -> float:
    """Device-to-device copy bandwidth in GB/s (read + write)."""
    x = tinyml.empty(nbytes // 4, device="cuda")
    y = tinyml.empty(nbytes // 4, device="cuda")
    ms = time_tinyml(lambda: y.copy_(x), reps)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def cases(torch, smoke: bool):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tdev = dev
    bf16 = tinyml.bfloat16

    def pair(shape, dtype=tinyml.float32, grad=True):
        a = tinyml.randn(*shape, dtype=dtype, device="cuda", requires_grad=grad)
        b = torch.randn(*shape, dtype=getattr(torch, dtype.name), device=tdev, requires_grad=grad)
        return a, b

    sizes = [64] if smoke else [1024, 2048, 4096, 8192]
    for n in sizes:
        a, ta = pair((n, n), bf16, grad=False)
        b, tb = pair((n, n), bf16, grad=False)
        yield (f"matmul bf16 {n}^3", lambda: a @ b, lambda: ta @ tb, ("flops", 2 * n ** 3))

    rows, cols = (8, 64) if smoke else (4096, 8192)
    x, tx = pair((rows, cols))
    g, tg = pair((rows, cols), grad=False)
    yield (f"softmax {rows}x{cols} f+b", lambda: x.softmax(-1).backward(g), lambda: tx.softmax(-1).backward(tg),
           ("bytes", 4 * rows * cols * 4))
    w, tw = pair((cols,))
    bias, tbias = pair((cols,))
    yield (f"layer_norm {rows}x{cols} f+b", lambda: F.layer_norm(x, (cols,), w, bias).backward(g),
           lambda: torch.nn.functional.layer_norm(tx, (cols,), tw, tbias).backward(tg), ("bytes", 5 * rows * cols * 4))

    n_ce, c_ce = (8, 100) if smoke else (16384, 32768)
    logits, tlogits = pair((n_ce, c_ce), bf16)
    target = tinyml.randint(0, c_ce, (n_ce,), device="cuda")
    ttarget = torch.randint(0, c_ce, (n_ce,), device=tdev)
    yield (f"cross_entropy {n_ce}x{c_ce} bf16 f+b", lambda: F.cross_entropy(logits, target).backward(),
           lambda: torch.nn.functional.cross_entropy(tlogits, ttarget).backward(), ("bytes", 3 * n_ce * c_ce * 2))

    for d in (64, 128):
        for t in ([32] if smoke else [1024, 2048, 4096, 8192]):
            heads = 2 if smoke else 32
            q, tq = pair((4 if not smoke else 1, heads, t, d), bf16)
            k, tk = pair(q.shape, bf16)
            v, tv = pair(q.shape, bf16)
            flops = 4 * q.shape[0] * heads * t * t * d / 2  # causal
            yield (f"attention fwd B4 H{heads} T{t} D{d} causal",
                   lambda: F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), is_causal=True),
                   lambda: torch.nn.functional.scaled_dot_product_attention(tq.detach(), tk.detach(), tv.detach(),
                                                                            is_causal=True), ("flops", flops))
            out, tout = F.scaled_dot_product_attention(q, k, v, is_causal=True), \
                torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
            go, tgo = pair(out.shape, bf16, grad=False)
            yield (f"attention bwd B4 H{heads} T{t} D{d} causal", lambda: out.backward(go, retain_graph=True),
                   lambda: tout.backward(tgo, retain_graph=True), ("flops", 2.5 * flops))

    n_params = 1000 if smoke else 124_000_000
    params = [tinyml.randn(n_params, device="cuda", requires_grad=True)]
    params[0].grad = tinyml.randn(n_params, device="cuda")
    tparams = [torch.randn(n_params, device=tdev, requires_grad=True)]
    tparams[0].grad = torch.randn(n_params, device=tdev)
    opt = tinyml.optim.AdamW(params, lr=1e-3)
    topt = torch.optim.AdamW(tparams, lr=1e-3, fused=dev == "cuda")
    yield (f"adamw step {n_params / 1e6:.0f}M params", opt.step, topt.step, ("bytes", 7 * n_params * 4))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (checks the script under the interpreter)")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)
    import torch

    reps = 2 if args.smoke else args.reps
    if not tinyml.cuda.is_available():
        sys.exit("bench/gpu_kernels.py needs a GPU (or TRITON_INTERPRET=1 with --smoke)")
    device = tinyml.cuda.device_name()
    bandwidth = copy_bandwidth((1 << 16) if args.smoke else (1 << 30), reps)
    a = tinyml.randn(64 if args.smoke else 8192, 64 if args.smoke else 8192, dtype=tinyml.bfloat16, device="cuda")
    n = a.shape[0]
    flops_rate = 2 * n ** 3 / (time_tinyml(lambda: a @ a, reps) * 1e-3)
    print(f"device: {device}; copy bandwidth {bandwidth:.0f} GB/s; tinyml bf16 matmul {flops_rate / 1e12:.1f} TFLOP/s")
    print(f"{'case':<44} {'tinyml ms':>10} {'torch ms':>10} {'torch/tinyml':>13} {'floor ms':>9}")
    for name, fn, tfn, (kind, amount) in cases(torch, args.smoke):
        ms = time_tinyml(fn, reps)
        tms = time_torch(torch, tfn, reps)
        floor = amount / (bandwidth * 1e9) * 1e3 if kind == "bytes" else amount / flops_rate * 1e3
        print(f"{name:<44} {ms:>10.3f} {tms:>10.3f} {tms / ms:>13.2f} {floor:>9.3f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
