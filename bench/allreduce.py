"""Data parallelism over MPI on the CPU: allreduce bandwidth and a GPT step on 2 ranks.

    python bench/allreduce.py                       # everything (needs `pip install mpi4py mpich`)
    python bench/allreduce.py --part allreduce      # only the bandwidth table
    python bench/allreduce.py --part gpt --config baby --steps 5

1. Allreduce of float32 vectors of 4 KiB .. 64 MiB on 2 ranks: tinyml.distributed.all_reduce (in
   place on a tensor's numpy buffer: one blocking MPI_Allreduce under the watchdog) and mpi4py's own
   comm.Allreduce on a numpy array, alternating in one process per rank (each goes first in every
   other round, after a barrier), medians; ratio = mpi4py time / tinyml time
   (> 1: tinyml faster). Bus bandwidth = 2 (n-1)/n * bytes / time (the ring's bytes per rank).
   `--part overhead`: the same call on 1 rank (nothing to wait for), best of 200 alternating
   rounds of 500 calls: the cost per call, without the noise of a peer's scheduling.
   tinyml's call is one MPI_Allreduce from C on an MPICH-ABI library (native_mpi.py);
   TINYML_MPI_NATIVE=0 times its mpi4py path instead.
2. The GPT training step (bench/gpt_cpu.py's configurations: forward + cross-entropy + backward +
   AdamW) at one global batch: 2 ranks x 1 thread with DistributedDataParallel (half the batch each)
   against 1 process x 2 threads; tokens/s and the ratio. The same 2-rank run also times a step
   under no_sync (no communication): exposed communication = DDP step - no_sync step; hidden
   fraction = 1 - exposed / (a standalone allreduce of all the gradient bytes).
Each configuration runs in processes of its own, started here one after the other.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpt_cpu import CONFIGS, VOCAB, batches  # noqa: E402

SIZES = [2**k for k in range(12, 27, 2)]  # bytes: 4 KiB .. 64 MiB


def mpiexec() -> str:
    found = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    if found is None:
        sys.exit("bench/allreduce.py needs an MPI launcher: pip install mpi4py mpich")
    return found


def launch(args: list[str], nproc: int | None, threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), *args]
    if nproc:
        cmd = [mpiexec(), "-n", str(nproc), *cmd]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if out.returncode:
        sys.exit(f"worker {args} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def allreduce_worker(reps: int) -> dict:
    import tinyml
    import tinyml.distributed as dist
    dist.init_process_group("mpi")
    comm, MPI = dist._backend.group().comm, dist._backend.mpi()
    rows = []
    for nbytes in SIZES:
        arr = np.ones(nbytes // 4, np.float32)
        t = tinyml.tensor(arr.copy())
        ours, theirs = [], []

        def time_ours():
            comm.Barrier()
            s = time.perf_counter()
            dist.all_reduce(t)
            return time.perf_counter() - s

        def time_theirs():
            comm.Barrier()
            s = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, arr)
            return time.perf_counter() - s

        for i in range(reps + 3):  # alternating, each first in every other round; the first 3 warm up
            if i % 2:
                b, a = time_theirs(), time_ours()
            else:
                a, b = time_ours(), time_theirs()
            if i >= 3:
                ours.append(a)
                theirs.append(b)
        # the slower rank's time is the collective's
        ours_t, theirs_t = comm.allreduce(statistics.median(ours), MPI.MAX), comm.allreduce(
            statistics.median(theirs), MPI.MAX)
        rows.append({"bytes": nbytes, "tinyml_s": ours_t, "mpi4py_s": theirs_t})
    return {"rows": rows, "rank": dist.get_rank(), "path": call_path()}


def call_path() -> str:
    """Which blocking all_reduce tinyml.distributed runs in this process."""
    from tinyml.distributed import collectives
    if collectives._native_all_reduce is not None:
        return "one MPI_Allreduce called from C (tinyml/distributed/native_mpi.py)"
    return ("mpi4py's comm.Allreduce (the C call is off: TINYML_MPI_NATIVE=0, not MPICH's ABI, "
            "or no tinyml._C)")


def overhead_worker(rounds: int = 200, calls: int = 500) -> dict:
    """The cost of one call with no peer to wait for (1 rank): tinyml.distributed.all_reduce
    against comm.Allreduce on a 4 KiB float32 array, alternating rounds, best round of each."""
    import tinyml
    import tinyml.distributed as dist
    dist.init_process_group("mpi")
    comm, MPI = dist._backend.group().comm, dist._backend.mpi()
    arr = np.ones(1024, np.float32)
    t = tinyml.tensor(arr.copy())
    ours, theirs = [], []
    for _ in range(rounds):
        s = time.perf_counter()
        for _ in range(calls):
            dist.all_reduce(t)
        ours.append((time.perf_counter() - s) / calls)
        s = time.perf_counter()
        for _ in range(calls):
            comm.Allreduce(MPI.IN_PLACE, arr)
        theirs.append((time.perf_counter() - s) / calls)
    return {"tinyml_s": min(ours), "mpi4py_s": min(theirs), "rank": 0, "path": call_path()}


def gpt_worker(config: str, steps: int, ddp: bool) -> dict:
    from tinyml.models import GPT, GPTConfig

    import tinyml
    cfg = CONFIGS[config]
    rank, world = 0, 1
    if ddp:
        import tinyml.distributed as dist
        dist.init_process_group("mpi")
        rank, world = dist.get_rank(), dist.get_world_size()
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=0.0))
    wrapped = dist.DistributedDataParallel(model) if ddp else model
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3)
    local = cfg["batch"] // world
    mine = slice(rank * local, (rank + 1) * local)
    data = [(tinyml.tensor(x[mine]), tinyml.tensor(y[mine])) for x, y in batches(cfg, steps + 2)]

    def step(x, y, sync=True):
        if sync:
            wrapped(x, y)[1].backward()
        else:
            with wrapped.no_sync():
                wrapped(x, y)[1].backward()
        opt.step()
        opt.zero_grad()

    def timed(sync: bool) -> float:
        times = []
        for i, (x, y) in enumerate(data):
            if ddp:
                dist.barrier()
            s = time.perf_counter()
            step(x, y, sync)
            if i >= 2:
                times.append(time.perf_counter() - s)
        return statistics.median(times)

    result = {"step_s": timed(True), "tokens": cfg["batch"] * cfg["block_size"]}
    if ddp:
        result["no_sync_step_s"] = timed(False)
        grads = np.zeros(sum(p.numel() for p in model.parameters()), np.float32)
        t = tinyml.tensor(grads)
        times = []
        for _ in range(5):
            dist.barrier()
            s = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - s)
        result["allreduce_s"] = statistics.median(times)
        result["gradient_bytes"] = grads.nbytes
        result["buckets"] = len(wrapped._buckets)
        if rank:
            sys.stdout = open(os.devnull, "w")
    return result


def report_allreduce(reps: int) -> list[str]:
    result = launch(["--worker", "allreduce", "--reps", str(reps)], 2, 1)
    rows = result["rows"]
    lines = [f"tinyml's all_reduce: {result['path']}",
             "| message | tinyml all_reduce | mpi4py Allreduce | bus GB/s (tinyml) | ratio mpi4py/tinyml |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        bus = 2 * (2 - 1) / 2 * r["bytes"] / r["tinyml_s"] / 1e9
        lines.append(f"| {r['bytes'] / 1024:.0f} KiB | {r['tinyml_s'] * 1e6:.1f} us | "
                     f"{r['mpi4py_s'] * 1e6:.1f} us | {bus:.2f} | {r['mpi4py_s'] / r['tinyml_s']:.2f}x |")
    return lines


def report_overhead() -> list[str]:
    r = launch(["--worker", "overhead"], None, 1)
    return [f"per call, 1 rank, 4 KiB float32 (no peer to wait for): tinyml all_reduce "
            f"{r['tinyml_s'] * 1e6:.2f} us, mpi4py Allreduce {r['mpi4py_s'] * 1e6:.2f} us (tinyml - mpi4py: "
            f"{(r['tinyml_s'] - r['mpi4py_s']) * 1e6:+.2f} us per call); tinyml's all_reduce: {r['path']}"]


def report_gpt(config: str, steps: int) -> list[str]:
    ddp = launch(["--worker", "gpt", "--config", config, "--steps", str(steps), "--ddp"], 2, 1)
    single = launch(["--worker", "gpt", "--config", config, "--steps", str(steps)], None, 2)
    rate_ddp, rate_single = ddp["tokens"] / ddp["step_s"], single["tokens"] / single["step_s"]
    exposed = max(ddp["step_s"] - ddp["no_sync_step_s"], 0.0)
    hidden = 1 - min(exposed / ddp["allreduce_s"], 1.0)
    cfg = CONFIGS[config]
    return [f"GPT {config} ({cfg['n_layer']}L, {cfg['n_embd']} wide, global batch {cfg['batch']}x"
            f"{cfg['block_size']}), {steps} timed steps:",
            "| run | ms/step | tokens/s |", "|---|---:|---:|",
            f"| 1 process x 2 threads | {single['step_s'] * 1e3:.0f} | {rate_single:,.0f} |",
            f"| 2 ranks x 1 thread, DDP | {ddp['step_s'] * 1e3:.0f} | {rate_ddp:,.0f} |",
            f"ratio (2 ranks / 1 process tokens/s): {rate_ddp / rate_single:.2f}x",
            f"gradients {ddp['gradient_bytes'] / 2**20:.1f} MiB in {ddp['buckets']} bucket(s); standalone "
            f"allreduce {ddp['allreduce_s'] * 1e3:.1f} ms; DDP step - no_sync step {exposed * 1e3:.1f} ms "
            f"(communication left exposed, bucket copies and rank skew): {hidden:.0%} of the allreduce "
            "time hidden behind backward by this measure"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["all", "allreduce", "overhead", "gpt"], default="all")
    p.add_argument("--config", choices=sorted(CONFIGS), default="small")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--worker", choices=["allreduce", "overhead", "gpt"])
    p.add_argument("--ddp", action="store_true")
    args = p.parse_args()
    if args.worker:
        workers = {"allreduce": lambda: allreduce_worker(args.reps), "overhead": overhead_worker,
                   "gpt": lambda: gpt_worker(args.config, args.steps, args.ddp)}
        result = workers[args.worker]()
        if args.worker != "gpt" and result["rank"]:
            return
        print(json.dumps(result), flush=True)
        return
    print(f"bench/allreduce.py on {os.cpu_count()} cores")
    if args.part in ("all", "allreduce"):
        print("\n".join(report_allreduce(args.reps)))
    if args.part in ("all", "overhead"):
        print("\n".join(report_overhead()))
    if args.part in ("all", "gpt"):
        print("\n".join(report_gpt(args.config, args.steps)))


if __name__ == "__main__":
    main()
