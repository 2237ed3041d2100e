"""GPT-2 training throughput on a GPU: tinyml against the same model in PyTorch eager.

    python bench/gpt_gpu.py                  # GPT-2 124M, B=16, T=1024, bf16 autocast, AdamW
    TRITON_INTERPRET=1 python bench/gpt_gpu.py --smoke      # a tiny model: checks the script runs

Both start from tinyml's initial weights (copied into torch) and train on the same random
batches; reported: median ms per step, tokens/s, the ratio torch/tinyml (> 1: tinyml faster),
the first losses side by side and tinyml's peak device memory.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GPT2 = dict(vocab=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768, batch=16)
SMOKE = dict(vocab=64, block_size=32, n_layer=2, n_head=2, n_embd=32, batch=2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    import torch
    from _torch_gpt import GPT as TorchGPT
    from tinyml.models import GPT, GPTConfig

    import tinyml

    cfg = SMOKE if args.smoke else GPT2
    steps = 3 if args.smoke else args.steps
    tdev = "cuda" if torch.cuda.is_available() else "cpu"
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=cfg["vocab"], block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], activation="gelu_new"))
    peer = TorchGPT(cfg["vocab"], cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
    peer.load_state_dict({k: torch.tensor(v.detach().numpy().copy()) for k, v in model.state_dict().items()},
                         strict=False)
    model.to("cuda")
    peer.to(tdev)
    opt = tinyml.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    topt = torch.optim.AdamW(peer.parameters(), lr=3e-4, weight_decay=0.1, fused=tdev == "cuda")
    rng = np.random.default_rng(0)
    shape = (cfg["batch"], cfg["block_size"])
    data = [(rng.integers(0, cfg["vocab"], shape), rng.integers(0, cfg["vocab"], shape))
            for _ in range(steps + 2)]

    def tinyml_step(x, y):
        with tinyml.autocast("cuda", dtype=tinyml.bfloat16):
            _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def torch_step(x, y):
        with torch.autocast(tdev, dtype=torch.bfloat16):
            _, loss = peer(x, y)
        topt.zero_grad()
        loss.backward()
        topt.step()
        return loss

    times, ttimes, losses, tlosses = [], [], [], []
    tinyml.cuda.reset_peak_memory_stats()
    for x, y in data:
        xs, ys = tinyml.tensor(x, device="cuda"), tinyml.tensor(y, device="cuda")
        start, end = tinyml.cuda.Event(), tinyml.cuda.Event()
        start.record()
        losses.append(tinyml_step(xs, ys).item())
        end.record()
        times.append(start.elapsed_time(end))
    for x, y in data:
        xt, yt = torch.tensor(x, device=tdev), torch.tensor(y, device=tdev)
        if tdev == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            tlosses.append(torch_step(xt, yt).item())
            e.record()
            e.synchronize()
            ttimes.append(s.elapsed_time(e))
        else:
            import time

            t = time.perf_counter()
            tlosses.append(torch_step(xt, yt).item())
            ttimes.append((time.perf_counter() - t) * 1e3)
    ms, tms = statistics.median(times[2:]), statistics.median(ttimes[2:])
    tokens = cfg["batch"] * cfg["block_size"]
    print(f"device: {tinyml.cuda.device_name()}; GPT {cfg['n_layer']}L {cfg['n_embd']}d, B={cfg['batch']} "
          f"T={cfg['block_size']}, bf16 autocast")
    print(f"tinyml {ms:.1f} ms/step ({tokens / ms * 1e3:,.0f} tok/s), torch {tms:.1f} ms/step "
          f"({tokens / tms * 1e3:,.0f} tok/s), torch/tinyml {tms / ms:.2f}; tinyml peak memory "
          f"{tinyml.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print("losses (tinyml / torch): " + " ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(losses[:5], tlosses[:5])))


if __name__ == "__main__":
    main()
