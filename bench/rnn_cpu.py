"""CPU benchmark: nn.LSTM / nn.GRU forward + backward (gradients of the input and every weight),
tinyml vs PyTorch eager, on a tiny-model size (B 16, T 64, H 128, 1 and 2 layers).

    python3 bench/rnn_cpu.py                   # 2 threads
    python3 bench/rnn_cpu.py --threads 1
    python3 bench/rnn_cpu.py --only LSTM --cpu-time   # process CPU time instead of wall clock
    python3 bench/rnn_cpu.py --only LSTM --workers    # each framework in its own process

The load average is printed before and after the table. --cpu-time (bench/cpu_kernels.py's --clock
cpu) times each run by the process's CPU time (all its threads, user + system) instead of the wall
clock: on a machine shared with other jobs, time spent descheduled then counts for neither framework
(time spent spinning at a barrier still counts, for both).

The harness is bench/cpu_kernels.py's: both frameworks in one process on the same inputs and
weights (torch's state dict copied into tinyml's layer), alternating run by run after warm-up,
medians in ms and the ratio torch / tinyml (above 1: tinyml is faster), plus the ratio of the
fastest runs. In one process each framework also meets the other's OpenMP threads: PyTorch's
(libgomp's default wait policy) spin for a few ms after each of its runs, on the cores tinyml's run
starts on next, and --cpu-time counts that spinning as tinyml's. --workers times each framework in
a process of its own instead (same seeds, so the same inputs and weights), alternating blocks of
--block runs between the two processes; the table is the same (without the floor column).
The floor is the layer's matmul flops over the float32 matmul rate measured here:
per layer 2 T B (I + H) G H forward, twice that backward (dx/dh and dW), G = 4 (LSTM) or 3 (GRU).
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

import tinyml


def _rnn_setup(cls, B, T, In, H, layers):
    def setup():
        torch.manual_seed(0)
        theirs = getattr(torch.nn, cls)(In, H, num_layers=layers, batch_first=True)
        ours = getattr(tinyml.nn, cls)(In, H, num_layers=layers, batch_first=True)
        ours.load_state_dict({k: tinyml.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
        x = np.random.default_rng(0).standard_normal((B, T, In)).astype(np.float32)
        g = np.random.default_rng(1).standard_normal((B, T, H)).astype(np.float32)
        xt, xp = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        gt, gp = tinyml.tensor(g), torch.tensor(g)
        params_t, params_p = [xt, *ours.parameters()], [xp, *theirs.parameters()]

        def run_t():
            for p in params_t:
                p.grad = None
            ours(xt)[0].backward(gt)

        def run_p():
            for p in params_p:
                p.grad = None
            theirs(xp)[0].backward(gp)

        G = 4 if cls == "LSTM" else 3
        flops = sum(3 * 2 * T * B * ((In if layer == 0 else H) + H) * G * H for layer in range(layers))
        return run_t, run_p, ("flops", flops)

    return setup


CASES = [
    {"name": f"{cls} {layers} layer{'s' if layers > 1 else ''} (fwd+bwd)", "shape": "B16 T64 I128 H128",
     "setup": _rnn_setup(cls, 16, 64, 128, 128, layers)}
    for cls in ("LSTM", "GRU")
    for layers in (1, 2)
]
CASES.append({"name": "LSTM 1 layer (fwd+bwd)", "shape": "B64 T32 I64 H256",
              "setup": _rnn_setup("LSTM", 64, 32, 64, 256, 1)})


def _worker(framework: str, case: int, threads: int, clock: str) -> None:
    """A worker process: sets up CASES[case], then for each line "N" on stdin runs `framework`'s side N
    times and writes their times (seconds, one JSON list per line); exits at end of input."""
    import json
    import time

    tinyml.set_num_threads(threads)
    torch.set_num_threads(threads)
    run_t, run_p, _ = CASES[case]["setup"]()
    fn = run_t if framework == "tinyml" else run_p
    timer = time.process_time if clock == "cpu" else time.perf_counter
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            t0 = timer()
            fn()
            times.append(timer() - t0)
        print(json.dumps(times), flush=True)


def _workers_table(args) -> None:
    """The cpu_kernels table, each framework timed in a worker process of its own (see the docstring)."""
    import json
    import subprocess

    print(f"machine: {os.cpu_count()} cpus, threads={args.threads}; torch {torch.__version__}, "
          f"numpy {np.__version__}")
    print(f"each framework in its own process, blocks of {args.block} runs alternating; timed by "
          f"{'process CPU time' if args.clock == 'cpu' else 'wall clock'}\n")
    print("| kernel (fwd+bwd) | shape | tinyml ms | torch ms | torch/tinyml | best-of ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for i, case in enumerate(CASES):
        if args.only and not any(case["name"].startswith(o) for o in args.only):
            continue
        procs = {
            fw: subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", fw, "--case", str(i), "--threads",
                 str(args.threads), "--clock", args.clock],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for fw in ("tinyml", "torch")
        }

        def run(fw, n):
            procs[fw].stdin.write(f"{n}\n")
            procs[fw].stdin.flush()
            return json.loads(procs[fw].stdout.readline())

        times = {"tinyml": [], "torch": []}
        for fw in procs:
            run(fw, args.warmup)
        for start in range(0, args.reps, args.block):
            for fw in procs:
                times[fw] += run(fw, min(args.block, args.reps - start))
        for p in procs.values():
            p.stdin.close()
            p.wait()
        t, p = (float(np.median(times[fw])) for fw in ("tinyml", "torch"))
        t_min, p_min = min(times["tinyml"]), min(times["torch"])
        print(f"| {case['name']} | {case['shape']} | {t * 1e3:.2f} | {p * 1e3:.2f} | {p / t:.2f} | "
              f"{p_min / t_min:.2f} |", flush=True)


def main(argv=None) -> None:
    """bench/cpu_kernels.py's table for these rows (or, with --workers, the same from two processes)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cpu_kernels

    cpu_kernels.CASES = CASES
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--cpu-time" in argv:  # bench/cpu_kernels.py's --clock cpu, under this script's older name
        i = argv.index("--cpu-time")
        argv[i:i + 1] = ["--clock", "cpu"]
    if "--worker" in argv:
        import argparse

        ap = argparse.ArgumentParser()
        ap.add_argument("--worker", choices=("tinyml", "torch"))
        ap.add_argument("--case", type=int)
        ap.add_argument("--threads", type=int)
        ap.add_argument("--clock", choices=("wall", "cpu"))
        a = ap.parse_args(argv)
        _worker(a.worker, a.case, a.threads, a.clock)
        return
    # the machine's load next to the figures: on a shared machine other jobs shift both columns
    print("load average (1, 5, 15 min) before: %.2f %.2f %.2f" % os.getloadavg())
    if "--workers" in argv:
        import argparse

        ap = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("--workers", action="store_true")
        ap.add_argument("--threads", type=int, default=2)
        ap.add_argument("--reps", type=int, default=20)
        ap.add_argument("--block", type=int, default=5, help="runs per turn of each worker")
        ap.add_argument("--warmup", type=int, default=3)
        ap.add_argument("--only", nargs="*", help="case names (prefixes) to run")
        ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
        _workers_table(ap.parse_args(argv))
    else:
        cpu_kernels.main(argv)
    print("load average (1, 5, 15 min) after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
