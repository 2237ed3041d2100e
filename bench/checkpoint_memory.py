"""Activation checkpointing on the small GPT (GPTConfig defaults: 4 layers, 128 wide, block 64):
activation memory held after forward and peak host memory over forward+backward, with and without
checkpointing every Block (tinyml.utils.checkpoint.checkpoint, use_reentrant=False), measured with
tinyml.memory.track (tracemalloc sees numpy's buffers); also the step time, whose ratio is the
recomputation's cost (no peer: this compares tinyml with itself).

    python bench/checkpoint_memory.py [--batch 16] [--layers 4]
"""
from __future__ import annotations

import argparse
import statistics
import time

from tinyml.models.transformer.gpt import GPT, GPTConfig

import tinyml
from tinyml.utils.checkpoint import checkpoint


def checkpoint_blocks(model: GPT) -> None:
    for blk in model.transformer.h:
        plain = blk.forward
        blk.forward = lambda x, *a, _f=plain: checkpoint(_f, x, *a, use_reentrant=False)


def measure(use_ckpt: bool, batch: int, layers: int, reps: int = 3) -> dict:
    tinyml.manual_seed(0)
    cfg = GPTConfig(n_layer=layers)
    model = GPT(cfg)
    if use_ckpt:
        checkpoint_blocks(model)
    idx = tinyml.randint(0, cfg.vocab_size, (batch, cfg.block_size))
    times, held, peak = [], 0, 0
    for _ in range(reps + 1):
        model.zero_grad()
        t0 = time.perf_counter()
        with tinyml.memory.track() as fwd:
            _, loss = model(idx, idx)
        with tinyml.memory.track() as bwd:
            loss.backward()
        times.append(time.perf_counter() - t0)
        held = fwd.host_bytes_retained
        peak = max(fwd.peak_host_bytes, fwd.host_bytes_retained + bwd.peak_host_bytes)
        del loss
    return {"held": held, "peak": peak, "time": statistics.median(times[1:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()
    tinyml.set_num_threads(2)
    plain, ckpt = measure(False, args.batch, args.layers), measure(True, args.batch, args.layers)
    print(f"GPT n_layer={args.layers} n_embd=128 T=64 batch={args.batch} (fwd+bwd, tracemalloc, host)")
    print(f"{'':<22}{'held after fwd MB':>18}{'peak fwd+bwd MB':>17}{'step ms':>10}")
    for name, r in (("no checkpointing", plain), ("checkpoint per Block", ckpt)):
        print(f"{name:<22}{r['held'] / 2**20:>18.2f}{r['peak'] / 2**20:>17.2f}{r['time'] * 1e3:>10.1f}")
    print(f"held ratio {plain['held'] / ckpt['held']:.2f}x less, peak ratio "
          f"{plain['peak'] / ckpt['peak']:.2f}x less, time ratio (plain / checkpointed) "
          f"{plain['time'] / ckpt['time']:.2f}")


if __name__ == "__main__":
    main()
