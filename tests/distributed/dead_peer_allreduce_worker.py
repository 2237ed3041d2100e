"""Run under `mpiexec -disable-auto-cleanup -n 2`: rank 1 dies after one all_reduce; rank 0's next
synchronous all_reduce (the blocking MPI_Allreduce path) must not wait forever: the watchdog ends
the job after the group's timeout, naming the collective on stderr."""
import os
import sys
import warnings

warnings.simplefilter("ignore", RuntimeWarning)  # tinyml._C may be rebuilding: the reference kernels serve

import tinyml  # noqa: E402
import tinyml.distributed as dist  # noqa: E402

dist.init_process_group("mpi", timeout=float(sys.argv[1]))
t = tinyml.ones(2)
dist.all_reduce(t)
assert t.numpy().tolist() == [2.0, 2.0], t
print(f"rank {dist.get_rank()}: first all_reduce ok", flush=True)
if dist.get_rank() == 1:
    os._exit(17)
dist.all_reduce(t)
print("rank 0: the second all_reduce returned (it should not have)", flush=True)
