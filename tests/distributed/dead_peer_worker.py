"""Run under `mpiexec -disable-auto-cleanup -n 2` (so that the launcher leaves the survivor
running): rank 1 dies in the middle of a DDP step; rank 0's gradient allreduce must give up after
the group's timeout with a RuntimeError naming it, instead of waiting forever."""
import os
import sys
import warnings

# tinyml._C may be missing while another build runs: the reference kernels then serve, with a warning
warnings.simplefilter("ignore", RuntimeWarning)

import tinyml  # noqa: E402
import tinyml.distributed as dist  # noqa: E402
from tinyml import nn  # noqa: E402

dist.init_process_group("mpi", timeout=float(sys.argv[1]))
rank = dist.get_rank()
model = dist.DistributedDataParallel(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
x = tinyml.randn(3, 4)
model(x).sum().backward()  # one good step
if rank == 1:
    os._exit(17)  # dies mid-step: after forward, before its backward posts the allreduce
loss = model(x).sum()
try:
    loss.backward()
except RuntimeError as exc:
    print(f"survivor error: {exc}", flush=True)
    try:
        dist.all_reduce(tinyml.ones(2))
    except RuntimeError as again:
        print(f"then: {again}", flush=True)
    raise
