"""A char-level GPT training step on the CPU: tinyml against the same model in PyTorch eager.

    python bench/gpt_cpu.py                 # baby and small, 2 threads each
    python bench/gpt_cpu.py --config baby --steps 20 --threads 2 --profile

Both frameworks start from the same weights (tinyml's init copied into torch) and see the same
batches; a step is forward + cross-entropy + backward + AdamW. Reports median ms per step, the
ratio torch/tinyml (> 1: tinyml faster) and the losses of the first 5 steps side by side.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {  # the two configurations
    "baby": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12),
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8),
}
VOCAB = 65


def build(cfg: dict):
    import torch

    import tinyml
    from _torch_gpt import GPT as TorchGPT
    from tinyml.models import GPT, GPTConfig

    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], activation="gelu_new"))
    peer = TorchGPT(VOCAB, cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
    state = {k: torch.tensor(v.detach().numpy().copy()) for k, v in model.state_dict().items()}
    missing, unexpected = peer.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not map: missing {missing}, unexpected {unexpected}")
    return model, peer


def batches(cfg: dict, n: int):
    rng = np.random.default_rng(0)
    shape = (cfg["batch"], cfg["block_size"])
    return [(rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape)) for _ in range(n)]


def run_tinyml(model, data, lr=1e-3):
    import tinyml

    opt = tinyml.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    losses, times = [], []
    for x, y in data:
        t = time.perf_counter()
        _, loss = model(tinyml.tensor(x), tinyml.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t)
    return losses, times


def run_torch(model, data, lr=1e-3):
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    losses, times = [], []
    for x, y in data:
        t = time.perf_counter()
        _, loss = model(torch.tensor(x), torch.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t)
    return losses, times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--steps", type=int, default=None, help="timed steps after 2 warm-up steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print tinyml's profile of one step")
    args = parser.parse_args(argv)
    import torch

    import tinyml

    torch.set_num_threads(args.threads)
    tinyml.set_num_threads(args.threads)
    print(f"threads: {args.threads}; torch {torch.__version__}")
    print(f"{'config':<7} {'tinyml ms':>10} {'torch ms':>10} {'torch/tinyml':>13}   losses of steps 1-5 (tinyml / torch)")
    for name in args.config or ["baby", "small"]:
        cfg = CONFIGS[name]
        steps = args.steps or (20 if name == "baby" else 5)
        data = batches(cfg, steps + 2)
        model, peer = build(cfg)
        losses, times = run_tinyml(model, data)
        tlosses, ttimes = run_torch(peer, data)
        ms, tms = 1e3 * statistics.median(times[2:]), 1e3 * statistics.median(ttimes[2:])
        pairs = " ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(losses[:5], tlosses[:5]))
        diff = max(abs(a - b) for a, b in zip(losses[:5], tlosses[:5]))
        print(f"{name:<7} {ms:>10.1f} {tms:>10.1f} {tms / ms:>13.2f}   {pairs}  (max |diff| {diff:.1e})")
        if args.profile:
            x, y = (tinyml.tensor(a) for a in data[0])
            with tinyml.profiler.profile() as prof:
                _, loss = model(x, y)
                loss.backward()
            print(prof.table(row_limit=15, kinds=("kernel",)))


if __name__ == "__main__":
    main()
