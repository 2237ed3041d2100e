"""How much of DDP's gradient allreduce backward hides, measured from tinyml's profiler trace.

    python bench/ddp_overlap.py                          # the small GPT, 2 ranks x 1 thread
    python bench/ddp_overlap.py --config baby --steps 3 --bucket-cap-mb 1 --trace-dir traces/

Each rank trains the GPT of bench/gpt_cpu.py (forward + cross-entropy + backward + AdamW, half the
global batch each) under DistributedDataParallel; after 2 warm-up steps it profiles `--steps`
steps with tinyml.profiler, exports the Chrome trace (open it in https://ui.perfetto.dev) and
reads it back with tinyml.distributed.overlap.communication_overlap:
    C = union of the bucket allreduces (launch -> observed completion), B = union of backward ops,
    fraction hidden = |C ∩ B| / |C|, exposed = |C| - |C ∩ B|,
plus the time spent in DDP's final wait. There is no peer framework here: this is tinyml's own
figure (the issue's "fraction of allreduce time overlapped"); the profiler's per-op timing makes
the step slower than unprofiled (bench/allreduce.py --part gpt times it without the profiler).
MPI progresses a non-blocking allreduce only inside MPI calls (DDP tests its buckets at every
gradient hook), so "in flight during backward" means posted and progressed at each hook.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from allreduce import mpiexec  # noqa: E402
from gpt_cpu import CONFIGS, VOCAB, batches  # noqa: E402


def worker(config: str, steps: int, bucket_cap_mb: float, trace_dir: str) -> None:
    from tinyml.models import GPT, GPTConfig

    import tinyml
    import tinyml.distributed as dist
    from tinyml.distributed import overlap
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = CONFIGS[config]
    tinyml.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=cfg["block_size"], n_layer=cfg["n_layer"],
                          n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=0.0))
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb)
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3)
    local = cfg["batch"] // world
    mine = slice(rank * local, (rank + 1) * local)
    data = [(tinyml.tensor(x[mine]), tinyml.tensor(y[mine])) for x, y in batches(cfg, steps + 2)]

    def step(x, y):
        ddp(x, y)[1].backward()
        opt.step()
        opt.zero_grad()

    for x, y in data[:2]:
        step(x, y)
    dist.barrier()
    with tinyml.profiler.profile(record_shapes=False) as prof:
        for x, y in data[2:]:
            step(x, y)
    trace = os.path.join(trace_dir, f"ddp_{config}_rank{rank}.json")
    prof.export_chrome_trace(trace)
    result = overlap.communication_overlap(trace)
    backward_us = sum(ev.total for ev in prof.events if ev.kind == "backward") * 1e6
    result.update(rank=rank, trace=trace, steps=steps, backward_us=backward_us,
                  buckets_per_step=len(ddp._buckets),
                  bucket_mib=[round(b.buffer.nbytes / 2**20, 2) for b in ddp._buckets])
    everyone = dist._backend.group().comm.gather(result, root=0)
    if rank == 0:
        print(json.dumps(everyone), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="small")
    p.add_argument("--steps", type=int, default=3, help="profiled steps, after 2 warm-up steps")
    p.add_argument("--bucket-cap-mb", type=float, default=25.0)
    p.add_argument("--trace-dir", default=None, help="the ranks' Chrome traces go here (default: a temp dir)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.config, args.steps, args.bucket_cap_mb, args.trace_dir)
        return
    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="tinyml-ddp-overlap-")
    os.makedirs(trace_dir, exist_ok=True)
    cmd = [mpiexec(), "-n", "2", sys.executable, os.path.abspath(__file__), "--worker", "--config",
           args.config, "--steps", str(args.steps), "--bucket-cap-mb", str(args.bucket_cap_mb),
           "--trace-dir", trace_dir]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    if run.returncode:
        sys.exit(f"the ranks failed:\n{run.stdout}\n{run.stderr}")
    ranks = json.loads(run.stdout.strip().splitlines()[-1])
    cfg = CONFIGS[args.config]
    first = ranks[0]
    print(f"bench/ddp_overlap.py on {os.cpu_count()} cores: GPT {args.config} ({cfg['n_layer']}L, "
          f"{cfg['n_embd']} wide, global batch {cfg['batch']}x{cfg['block_size']}), 2 ranks x 1 thread, "
          f"{args.steps} profiled steps; {first['buckets_per_step']} buckets per step of "
          f"{first['bucket_mib']} MiB (bucket_cap_mb={args.bucket_cap_mb:g})")
    print("| rank | allreduce in flight (ms) | hidden behind backward (ms) | exposed (ms) | hidden fraction "
          "| final wait (ms) | backward compute (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in ranks:
        print(f"| {r['rank']} | {r['allreduce_us'] / 1e3:.1f} | {r['overlapped_us'] / 1e3:.1f} | "
              f"{r['exposed_us'] / 1e3:.1f} | {r['fraction']:.0%} | {r['wait_us'] / 1e3:.1f} | "
              f"{r['backward_us'] / 1e3:.1f} |")
    print("traces: " + ", ".join(r["trace"] for r in ranks))


if __name__ == "__main__":
    main()
