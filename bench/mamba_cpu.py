"""Mamba on the CPU: tinyml's MambaLM against transformers' MambaForCausalLM (its slow path: pure
PyTorch, a Python loop over time in the scan), same config and weights, on 2 threads.

    python bench/mamba_cpu.py                         # training step and generation, both configs
    python bench/mamba_cpu.py --config baby --steps 5 --tokens 64
    python bench/mamba_cpu.py --gen-only --gen-repeats 5      # generation alone, best of 5 runs

Training: forward + cross-entropy + backward + AdamW on the same batches, median ms per step after
2 warm-up steps, the losses of the first steps side by side (they must agree). Generation: greedy,
batch 1, a 16-token prompt then `--tokens` new tokens with the cache (tinyml's constant-size conv +
SSM state, one causal_conv1d_update and one fused selective_state_update per layer and token;
transformers' cache), `--gen-repeats` runs each, tokens per second of the best run and of the
median run, and whether both produced the same tokens. The load average (`uptime`) is printed
beside each row: on a shared machine the best run is the figure to compare.
tinyml's weights go to transformers through save_pretrained. Each framework runs in a worker
process of its own, one after the other (both load libgomp; see bench/gpt_cpu.py), both with
OMP_WAIT_POLICY=passive: tinyml's own policy, and without it PyTorch's spinning OpenMP threads
took 80x longer per step on a loaded 2-core box. Ratios are peer time / tinyml time: > 1 means
tinyml is faster.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIGS = {  # baby: the `tinyml train --model mamba` preset; long: a longer context where the scan dominates
    "baby": dict(d_model=128, n_layer=6, d_state=16, d_conv=4, expand=2, T=64, batch=12),
    "long": dict(d_model=128, n_layer=2, d_state=16, d_conv=4, expand=2, T=256, batch=4),
}
VOCAB = 65


def batches(cfg: dict, n: int):
    rng = np.random.default_rng(0)
    return [rng.integers(0, VOCAB, (cfg["batch"], cfg["T"] + 1)) for _ in range(n)]


def prompt():
    return np.random.default_rng(1).integers(0, VOCAB, (1, 16))


def tinyml_worker(cfg: dict, steps: int, tokens: int, repeats: int, threads: int, folder: str) -> dict:
    from tinyml.models import MambaConfig, MambaLM, generate

    import tinyml

    tinyml.set_num_threads(threads)
    tinyml.manual_seed(0)
    sizes = {k: v for k, v in cfg.items() if k not in ("T", "batch")}
    model = MambaLM(MambaConfig(vocab_size=VOCAB, **sizes))
    model.save_pretrained(folder)
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    losses, times = [], []
    for ids in batches(cfg, steps + 2 if steps else 0):
        t = time.perf_counter()
        _, loss = model(tinyml.tensor(ids[:, :-1]), tinyml.tensor(ids[:, 1:]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t)
    model = tinyml.models.from_pretrained(folder)  # generation from the initial weights, as the peer
    generate(model, prompt(), 4, temperature=0)  # warm-up
    gen_s = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = generate(model, prompt(), tokens, temperature=0)
        gen_s.append(time.perf_counter() - t)
    return {"losses": losses, "times": times, "gen_s": gen_s, "tokens": out[0]}


def torch_worker(cfg: dict, steps: int, tokens: int, repeats: int, threads: int, folder: str) -> dict:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = transformers.MambaForCausalLM.from_pretrained(folder)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    losses, times = [], []
    for ids in batches(cfg, steps + 2 if steps else 0):
        x = torch.tensor(ids)
        t = time.perf_counter()
        loss = model(x, labels=x).loss  # labels shift inside: the same targets as tinyml's
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t)
    model = transformers.MambaForCausalLM.from_pretrained(folder).eval()
    p = torch.tensor(prompt())
    kw = dict(do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(p))
    with torch.no_grad():
        model.generate(p, max_new_tokens=4, **kw)
        gen_s = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = model.generate(p, max_new_tokens=tokens, **kw)
            gen_s.append(time.perf_counter() - t)
    return {"losses": losses, "times": times, "gen_s": gen_s, "tokens": out[0].tolist()}


def run_worker(framework: str, config: str, args, folder: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", framework, "--config", config, "--steps", str(args.steps),
           "--tokens", str(args.tokens), "--gen-repeats", str(args.gen_repeats),
           "--threads", str(args.threads), "--folder", folder] + (["--gen-only"] if args.gen_only else [])
    env = {**os.environ, "OMP_WAIT_POLICY": "passive"}  # see the docstring
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps after 2 warm-up steps")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens generated")
    parser.add_argument("--gen-repeats", type=int, default=3, help="timed generation runs per framework")
    parser.add_argument("--gen-only", action="store_true", help="skip the training steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=("tinyml", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        work = tinyml_worker if args.worker == "tinyml" else torch_worker
        steps = 0 if args.gen_only else args.steps
        print(json.dumps(work(CONFIGS[args.config[0]], steps, args.tokens, args.gen_repeats, args.threads,
                              args.folder)))
        return
    print(f"threads: {args.threads}; each framework in its own worker process, same weights and batches; "
          "peer: transformers MambaForCausalLM (slow path)")
    print(f"{'config':<6} {'train tinyml ms':>15} {'torch ms':>9} {'ratio':>6}   {'gen tinyml tok/s':>16} "
          f"{'torch tok/s':>11} {'ratio':>6} {'median ratio':>12}  same tokens  load   "
          "losses of steps 1-3 (tinyml / torch)")
    for name in args.config or ["baby", "long"]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "mamba")
            mine = run_worker("tinyml", name, args, folder)
            peer = run_worker("torch", name, args, folder)
        if mine["times"][2:]:
            ms, tms = 1e3 * statistics.median(mine["times"][2:]), 1e3 * statistics.median(peer["times"][2:])
            train = f"{ms:>15.1f} {tms:>9.1f} {tms / ms:>6.2f}"
        else:
            train = f"{'-':>15} {'-':>9} {'-':>6}"
        tok, ttok = args.tokens / min(mine["gen_s"]), args.tokens / min(peer["gen_s"])
        med = statistics.median(peer["gen_s"]) / statistics.median(mine["gen_s"])
        pairs = " ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(mine["losses"][:3], peer["losses"][:3]))
        load = os.getloadavg()[0]
        print(f"{name:<6} {train}   {tok:>16.1f} {ttok:>11.1f} {tok / ttok:>6.2f} {med:>12.2f}  "
              f"{str(mine['tokens'] == peer['tokens']):<11}  {load:<5.1f}  {pairs}")


if __name__ == "__main__":
    main()
