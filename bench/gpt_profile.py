"""Per-kernel profile of a compiled GPT training step on the CPU (docs/gpt_step_cpu.md).

    python bench/gpt_profile.py                          # baby preset, 2 threads, 40 replayed steps
    python bench/gpt_profile.py --config small --steps 4 --threads 2
    python bench/gpt_profile.py --torch                  # PyTorch's profiler on the same step, beside
    python bench/gpt_profile.py --split-ab               # each kernel call on 1 thread vs 2, interleaved

The step (forward, cross-entropy, backward, AdamW) of bench/gpt_cpu.py goes through tinyml.compile;
after the recording calls, every kernel of the replay and every eager segment (optimizer step,
zero_grad) is wrapped with three clocks: wall, the main thread's CPU time and the process's CPU
time. Per kernel name it prints calls, wall ms, main-thread ms and process ms per step, and
process / wall: how many threads worked during the call. On a loaded machine read the CPU columns.
With --split-ab each kernel call of one replayed step is re-run on 1 and on 2 threads, alternating,
and its best wall time of each is printed per kernel name: where 1 thread wins, the call is too small
to pay for a parallel region (a wake-up of the sleeping OpenMP worker and a join). The best of many
alternating runs is what a quiet machine gives; the load only makes fewer runs quiet.
With --torch the same model (bench/_torch_gpt.py, same threads) runs under torch.profiler in a
worker process of its own, and its per-op self CPU time per step is printed after.
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gpt_cpu import CONFIGS, VOCAB, batches  # noqa: E402


def _kernel_name(fn) -> str:
    module = getattr(fn, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{getattr(fn, '__name__', repr(fn))}"


def _voluntary_switches() -> tuple[int, int]:
    """(all threads, main thread): the process's voluntary context switches so far (Linux /proc). Each
    is a thread going to sleep, here mostly an OpenMP thread waiting passively at a region's start or
    end, which a wake-up then ends; the main thread's are on the step's path. Counts, unlike the time a
    wake-up takes, hardly depend on the load. (0, 0) where /proc is missing."""
    total = main = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
                        main += int(line.split()[1]) if int(tid) == os.getpid() else 0
    except OSError:  # not Linux
        return 0, 0
    return total, main


def split_ab(namespace: dict, step, x, y, threads: int, repeats: int) -> None:
    """Record each kernel call of one replayed step, then time each call alone on 1 and on `threads`
    threads, alternating, `repeats` times: the best wall time of each, summed per kernel name."""
    import tinyml

    calls = []
    originals = {key: fn for key, fn in namespace.items() if key[:1] == "k" and key[1:].isdigit()}

    def recording(fn):
        def call(*args, **kwargs):
            calls.append((fn, args, kwargs))
            return fn(*args, **kwargs)
        return call

    for key, fn in originals.items():
        namespace[key] = recording(fn)
    step(x, y)
    namespace.update(originals)
    best = collections.defaultdict(lambda: [0, 0.0, 0.0])
    clock = time.perf_counter
    for fn, args, kwargs in calls:
        t = {1: float("inf"), threads: float("inf")}
        for _ in range(repeats):
            for n in (1, threads):
                tinyml.set_num_threads(n)
                t0 = clock()
                fn(*args, **kwargs)
                t[n] = min(t[n], clock() - t0)
        s = best[_kernel_name(fn)]
        s[0] += 1
        s[1] += t[1]
        s[2] += t[threads]
    tinyml.set_num_threads(threads)
    print(f"\neach call alone, best of {repeats} alternating runs (load {os.getloadavg()[0]:.1f}), per step:")
    print(f"{'kernel':<44}{'calls':>6}{'1 thr us':>10}{f'{threads} thr us':>10}{'ratio':>7}")
    total = [0.0, 0.0]
    for name, (c, t1, tn) in sorted(best.items(), key=lambda kv: -kv[1][1]):
        total = [total[0] + t1, total[1] + tn]
        print(f"{name:<44}{c:>6}{t1 * 1e6:>10.1f}{tn * 1e6:>10.1f}{t1 / tn if tn else 0:>7.2f}")
    print(f"{'all kernels':<50}{total[0] * 1e6:>10.1f}{total[1] * 1e6:>10.1f}")


def profile_tinyml(cfg: dict, threads: int, steps: int, ab_repeats: int = 0) -> None:
    from tinyml.models import GPT, GPTConfig

    import tinyml

    tinyml.set_num_threads(threads)
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], activation="gelu_new"))
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def train_step(x, y):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = tinyml.compile(train_step)
    data = [(tinyml.tensor(x), tinyml.tensor(y)) for x, y in batches(cfg, 4)]
    for x, y in data[:3]:
        step(x, y)
    entry = next(e for e in step._entries.values() if e.program is not None)
    namespace = entry.program.run.__globals__
    if ab_repeats:
        split_ab(namespace, step, *data[3], threads, ab_repeats)
        return
    stats = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    wall, main, proc = time.perf_counter, time.thread_time, time.process_time

    def timed(fn, name):
        def call(*args, **kwargs):
            w, t, p = wall(), main(), proc()
            try:
                return fn(*args, **kwargs)
            finally:
                s = stats[name]
                s[0] += 1
                s[1] += wall() - w
                s[2] += main() - t
                s[3] += proc() - p
        return call

    for key, fn in list(namespace.items()):
        if key[:1] in "kg" and key[1:].isdigit():
            name = _kernel_name(fn) if key[0] == "k" else "segment:" + getattr(fn, "__qualname__", "?")
            namespace[key] = timed(fn, name)
    x, y = data[3]
    switches = _voluntary_switches()
    w, t, p = wall(), main(), proc()
    for _ in range(steps):
        step(x, y)
    w, t, p = ((c() - s) / steps * 1e3 for c, s in ((wall, w), (main, t), (proc, p)))
    switches = [(b - a) / steps for a, b in zip(switches, _voluntary_switches())]
    print(f"tinyml, {threads} threads, {steps} replayed steps, load {os.getloadavg()[0]:.1f}: "
          f"{step.kernel_calls} kernel calls; wall {w:.1f} ms, main thread {t:.1f}, process CPU {p:.1f}; "
          f"voluntary context switches per step {switches[0]:.0f} (main thread {switches[1]:.0f})")
    print(f"{'kernel':<44}{'calls':>6}{'wall ms':>9}{'main ms':>9}{'proc ms':>9}{'threads':>8}")
    total = [0.0, 0.0, 0.0]
    for name, (c, sw, st, sp) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        total = [total[0] + sw, total[1] + st, total[2] + sp]
        print(f"{name:<44}{c / steps:>6.0f}{sw / steps * 1e3:>9.2f}{st / steps * 1e3:>9.2f}"
              f"{sp / steps * 1e3:>9.2f}{sp / sw if sw else 0:>8.2f}")
    print(f"{'all kernels and segments':<50}" + "".join(f"{v / steps * 1e3:>9.2f}" for v in total))


def profile_torch(cfg: dict, threads: int, steps: int) -> None:
    import torch
    from _torch_gpt import GPT as TorchGPT
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TorchGPT(VOCAB, cfg["block_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    data = [(torch.tensor(x), torch.tensor(y)) for x, y in batches(cfg, 4)]

    def train_step(x, y):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for x, y in data[:3]:
        train_step(x, y)
    x, y = data[3]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            train_step(x, y)
    rows = sorted(((e.self_cpu_time_total / steps / 1e3, e.count / steps, e.key)
                   for e in prof.key_averages()), reverse=True)
    print(f"\nPyTorch {torch.__version__}, {threads} threads, {steps} steps under torch.profiler "
          f"(each op's self time by the profiler's clock: wall time on the thread that ran it), "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'op':<52}{'calls':>6}{'self ms':>9}")
    for ms, calls, key in rows[:25]:
        print(f"{key[:51]:<52}{calls:>6.0f}{ms:>9.2f}")
    print(f"{'all ops':<58}{sum(r[0] for r in rows):>9.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="baby")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="profiled steps (40 baby, 4 small)")
    parser.add_argument("--torch", action="store_true", help="also profile PyTorch's step, in a worker")
    parser.add_argument("--split-ab", type=int, nargs="?", const=30, default=0, metavar="REPEATS",
                        help="time each kernel call alone on 1 thread vs --threads, alternating (30 runs)")
    parser.add_argument("--worker", choices=("torch",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg, steps = CONFIGS[args.config], args.steps or (40 if args.config == "baby" else 4)
    if args.worker:
        profile_torch(cfg, args.threads, steps)
        return
    profile_tinyml(cfg, args.threads, steps, args.split_ab)
    if args.torch:  # its own process: the two frameworks share libgomp (bench/gpt_cpu.py's docstring)
        subprocess.run([sys.executable, __file__, "--worker", "torch", "--config", args.config,
                        "--threads", str(args.threads), "--steps", str(steps)], check=True)


if __name__ == "__main__":
    main()
