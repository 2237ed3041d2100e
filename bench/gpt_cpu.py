"""A char-level GPT training step on the CPU: tinyml against the same model in PyTorch eager.

    python bench/gpt_cpu.py                 # baby and small, 2 threads each
    python bench/gpt_cpu.py --config baby --steps 20 --threads 2 --profile
    python bench/gpt_cpu.py --config baby --repeat 5   # 5 alternating tinyml/torch runs, median and best
    python bench/gpt_cpu.py --config baby --compile    # tinyml.compile's replay, vs torch and eager

Both frameworks start from the same weights (tinyml's init, handed to torch through a safetensors
file) and see the same batches; a step is forward + cross-entropy + backward + AdamW. Each runs in
a worker process of its own, started by this script one after the other: PyTorch and tinyml load
the same OpenMP runtime (libgomp), whose thread wait policy is fixed by whichever loads it first,
so in one process the first framework would set the other's threading. Reports median ms per step,
the ratio torch/tinyml (> 1: tinyml faster) and the losses of the first 5 steps side by side.
With --repeat N the two workers alternate N times (tinyml, torch, tinyml, ...), each run's ratio
and 1-minute load average is printed, then the median and best ratio: on a shared machine one
run's ratio says little. Each row also gives the median process CPU time per step of each worker
(all its threads) and their ratio: with 1 thread it is immune to other processes' time slices;
with 2 it also counts threads that spin while they wait (PyTorch's OpenMP workers do). "main"
is the CPU time of the worker's main thread alone: it runs all the Python and every kernel that
is not split over threads, so a step's wall time is at least that, and (process CPU - main) is
what the other threads did; on 2 threads, main close to the wall time means the second core waits
on the first (docs/cpu_speed.md, section 4). Each worker also records per step its minor page faults
and voluntary / involuntary context switches (getrusage); bench/gpt_spread.py prints them with the
per-step time distribution of each run.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = {  # the two configurations
    "baby": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12),
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8),
}
VOCAB = 65


def batches(cfg: dict, n: int):
    rng = np.random.default_rng(0)
    shape = (cfg["batch"], cfg["block_size"])
    return [(rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape)) for _ in range(n)]


def _events() -> tuple[int, int, int]:
    """(minor page faults, voluntary, involuntary context switches) of the process so far, all threads
    (getrusage): per step, the faults count fresh memory the step touches (new pages of an allocation)
    and the voluntary switches count threads going to sleep (an OpenMP thread waiting passively)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_minflt, r.ru_nvcsw, r.ru_nivcsw


def time_replay_parts(compiled) -> tuple[dict, list]:
    """Wrap each kernel ("k<n>") and each eager segment ("g<n>": optimizer step, zero_grad) of the
    compiled step's replay in a timer: spent = [kernel seconds, segment seconds]. What a replay
    spends beyond both is its Python (an upper bound: it includes the timers' own cost). Returns
    the original functions, to put back."""
    import time as _time

    entry = next(e for e in compiled._entries.values() if e.program is not None)
    namespace = entry.program.run.__globals__
    spent = [0.0, 0.0]

    def timed(fn, part):
        def call(*args, **kwargs):
            t = _time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[part] += _time.perf_counter() - t
        return call

    originals = {k: v for k, v in namespace.items() if k[:1] in "kg" and k[1:].isdigit()}
    namespace.update({k: timed(v, 0 if k[0] == "k" else 1) for k, v in originals.items()})
    return originals, spent


def tinyml_worker(cfg: dict, steps: int, threads: int, weights: str, profile: bool,
                  compiled: bool = False) -> dict:
    from tinyml.models import GPT, GPTConfig

    import tinyml

    tinyml.set_num_threads(threads)
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], activation="gelu_new"))
    tinyml.save(model.state_dict(), weights)
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def train_step(x, y):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = tinyml.compile(train_step) if compiled else train_step
    losses, times, cpu_times, main_times, events = [], [], [], [], []
    for x, y in batches(cfg, steps + 2):  # compiled: the 2 warm-up calls record, the timed ones replay
        r, t, c, m = _events(), time.perf_counter(), time.process_time(), time.thread_time()
        loss = step(tinyml.tensor(x), tinyml.tensor(y))
        losses.append(loss.item())
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
        main_times.append(time.thread_time() - m)
        events.append([b - a for a, b in zip(r, _events())])
    out = {"losses": losses, "times": times, "cpu_times": cpu_times, "main_times": main_times,
           "events": events}
    if compiled:
        out["explain"] = step.explain()
        out["kernel_calls"] = step.kernel_calls
        originals, spent = time_replay_parts(step)
        x, y = (tinyml.tensor(a) for a in batches(cfg, 1)[0])
        t = time.perf_counter()
        step(x, y)
        out["replay_ms"] = 1e3 * (time.perf_counter() - t)
        out["replay_python_ms"] = out["replay_ms"] - 1e3 * (spent[0] + spent[1])
        out["replay_segments_ms"] = 1e3 * spent[1]
        next(e for e in step._entries.values() if e.program).program.run.__globals__.update(originals)
    if profile:
        x, y = (tinyml.tensor(a) for a in batches(cfg, 1)[0])
        opt.zero_grad()  # as in a training step: no accumulation into last step's gradients
        with tinyml.profiler.profile() as prof:
            _, loss = model(x, y)
            loss.backward()
        out["profile"] = prof.table(row_limit=15, kinds=("kernel",))
    return out


def torch_worker(cfg: dict, steps: int, threads: int, weights: str) -> dict:
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, HERE)
    from _torch_gpt import GPT as TorchGPT

    torch.set_num_threads(threads)
    model = TorchGPT(VOCAB, cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
    missing, unexpected = model.load_state_dict(load_file(weights), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not map: missing {missing}, unexpected {unexpected}")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    losses, times, cpu_times, main_times, events = [], [], [], [], []
    for x, y in batches(cfg, steps + 2):
        r, t, c, m = _events(), time.perf_counter(), time.process_time(), time.thread_time()
        _, loss = model(torch.tensor(x), torch.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
        main_times.append(time.thread_time() - m)
        events.append([b - a for a, b in zip(r, _events())])
    return {"losses": losses, "times": times, "cpu_times": cpu_times, "main_times": main_times,
            "events": events}


def run_worker(framework: str, config: str, steps: int, threads: int, weights: str, profile: bool,
               compiled: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", framework, "--config", config, "--steps", str(steps),
           "--threads", str(threads), "--weights", weights] + (["--profile"] if profile else []) + \
        (["--compile"] if compiled else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), action="append")
    parser.add_argument("--steps", type=int, default=None, help="timed steps after 2 warm-up steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print tinyml's profile of one step")
    parser.add_argument("--repeat", type=int, default=1, help="alternating tinyml/torch runs per config")
    parser.add_argument("--worker", choices=("tinyml", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true",
                        help="tinyml's step through tinyml.compile (a third worker runs tinyml eager)")
    args = parser.parse_args(argv)
    if args.worker:
        cfg = CONFIGS[args.config[0]]
        if args.worker == "tinyml":
            result = tinyml_worker(cfg, args.steps, args.threads, args.weights, args.profile, args.compile)
        else:
            result = torch_worker(cfg, args.steps, args.threads, args.weights)
        print(json.dumps(result))
        return
    print(f"threads: {args.threads}; each framework in its own worker process, same weights and batches")
    print(f"{'config':<7} {'tinyml ms':>10} {'torch ms':>10} {'torch/tinyml':>13}   "
          "losses of steps 1-5 (tinyml / torch)")
    for name in args.config or ["baby", "small"]:
        steps = args.steps or (20 if name == "baby" else 5)
        ratios, cpu_ratios, eager_ratios, eager_cpu_ratios = [], [], [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                weights = os.path.join(tmp, "init.safetensors")
                mine = run_worker("tinyml", name, steps, args.threads, weights, args.profile, args.compile)
                peer = run_worker("torch", name, steps, args.threads, weights, False)
                eager = (run_worker("tinyml", name, steps, args.threads, weights, False) if args.compile
                         else None)
            ms, tms = 1e3 * statistics.median(mine["times"][2:]), 1e3 * statistics.median(peer["times"][2:])
            cpu, tcpu = (1e3 * statistics.median(r["cpu_times"][2:]) for r in (mine, peer))
            main, tmain = (1e3 * statistics.median(r["main_times"][2:]) for r in (mine, peer))
            pairs = " ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(mine["losses"][:5], peer["losses"][:5]))
            diff = max(abs(a - b) for a, b in zip(mine["losses"][:5], peer["losses"][:5]))
            print(f"{name:<7} {ms:>10.1f} {tms:>10.1f} {tms / ms:>13.2f}   {pairs}  (max |diff| {diff:.1e}; "
                  f"load {os.getloadavg()[0]:.1f}; CPU ms/step {cpu:.1f} vs {tcpu:.1f}, "
                  f"ratio {tcpu / cpu:.2f}; main thread {main:.1f} vs {tmain:.1f})", flush=True)
            ratios.append(tms / ms)
            cpu_ratios.append(tcpu / cpu)
            if eager is not None:
                ems, ecpu, emain = (1e3 * statistics.median(eager[k][2:])
                                    for k in ("times", "cpu_times", "main_times"))
                same = mine["losses"] == eager["losses"]
                print(f"{'':<7} compiled vs eager tinyml: {ms:.1f} vs {ems:.1f} ms, ratio {ems / ms:.2f}; "
                      f"CPU ms/step {cpu:.1f} vs {ecpu:.1f}, ratio {ecpu / cpu:.2f}; main thread {main:.1f} "
                      f"vs {emain:.1f}; losses bit-identical: {same}; {mine['kernel_calls']} kernel calls "
                      "per step; "
                      f"one replay {mine['replay_ms']:.1f} ms: {mine['replay_python_ms']:.2f} ms Python, "
                      f"{mine['replay_segments_ms']:.2f} ms optimizer step + zero_grad (eager)", flush=True)
                eager_ratios.append(ems / ms)
                eager_cpu_ratios.append(ecpu / cpu)
            if "profile" in mine:
                print(mine["profile"])
        if args.repeat > 1:
            print(f"{name}: torch/tinyml over {args.repeat} alternating runs: median "
                  f"{statistics.median(ratios):.2f}, best {max(ratios):.2f}, worst {min(ratios):.2f}; "
                  f"CPU-time ratio median {statistics.median(cpu_ratios):.2f} ({min(cpu_ratios):.2f}-"
                  f"{max(cpu_ratios):.2f})")
            if eager_ratios:
                print(f"{name}: eager/compiled tinyml over {args.repeat} runs: median "
                      f"{statistics.median(eager_ratios):.2f} "
                      f"({min(eager_ratios):.2f}-{max(eager_ratios):.2f}); CPU-time ratio median "
                      f"{statistics.median(eager_cpu_ratios):.2f}")


if __name__ == "__main__":
    main()
