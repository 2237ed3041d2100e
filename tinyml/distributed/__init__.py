"""tinyml.distributed: data-parallel training over MPI, with torch.distributed's names.

    # mpiexec -n 2 python train.py        (pip install mpi4py mpich)
    import tinyml.distributed as dist
    dist.init_process_group(backend="mpi")
    model = dist.DistributedDataParallel(model)          # parameters broadcast from rank 0
    sampler = dist.DistributedSampler(dataset)           # each rank reads its own shard
    loss.backward()                                      # gradients averaged in buckets during backward

Process group: init_process_group, is_initialized, is_available, get_rank, get_world_size,
get_backend, destroy_process_group. Collectives on cpu tensors (in place on the numpy buffer when
it is contiguous): all_reduce (ReduceOp SUM, AVG, PRODUCT, MIN, MAX), broadcast, all_gather,
all_gather_into_tensor, reduce_scatter, reduce_scatter_tensor, barrier; `async_op=True` returns
a Work with wait(). Every wait gives up after the group's timeout with a RuntimeError, so a rank
whose peer died does not hang (a synchronous all_reduce of a contiguous buffer is one blocking
MPI_Allreduce, whose timeout ends the job with a message instead); an exception nothing catches
ends every rank (MPI_Abort after its traceback) instead of leaving the others waiting. The "mpi"
backend uses mpi4py, loaded on first use. The "nccl" backend (nccl.py: libnccl.so.2 through
ctypes, `pip install nvidia-nccl-cu12`) runs the same collectives on cuda tensors, one GPU per rank,
launched by mpiexec: MPI assigns the ranks and carries NCCL's unique id from rank 0. DistributedDataParallel
works over the mpi backend only; under tinyml.profiler its bucket allreduces are on the trace's
timeline, and `overlap.communication_overlap(trace)` measures how much of them backward hid.
"""
from __future__ import annotations

import datetime
import os

from ..backends import cuda as _cuda
from . import _backend, nccl, overlap
from ._backend import DEFAULT_TIMEOUT_S, Work
from .collectives import (
    ReduceOp,
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    barrier,
    broadcast,
    fill_fast_types,
    reduce_scatter,
    reduce_scatter_tensor,
)
from .ddp import DistributedDataParallel
from .sampler import DistributedSampler

__all__ = ["init_process_group", "is_initialized", "is_available", "get_rank", "get_world_size",
           "get_backend", "destroy_process_group", "ReduceOp", "Work", "all_reduce", "broadcast",
           "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "barrier",
           "DistributedDataParallel", "DistributedSampler", "nccl", "overlap"]

_BACKENDS = ("mpi", "nccl")


def is_available() -> bool:
    """True when mpi4py and an MPI library can be imported."""
    try:
        _backend.mpi()
    except RuntimeError:
        return False
    return True


def init_process_group(backend: str = "mpi", init_method=None, timeout=None, world_size: int = -1,
                       rank: int = -1) -> None:
    """Join the default process group: every process started by `mpiexec -n N`. MPI assigns the
    ranks, so `world_size`/`rank`, when given, must agree with it. `timeout` (a timedelta or
    seconds; default 30 minutes) bounds every wait on a collective (with nccl: every barrier).
    backend="nccl" also builds an NCCL communicator over the ranks' GPUs: on a node with several
    ranks, each takes the GPU of its local rank through CUDA_VISIBLE_DEVICES, so call this before
    the first cuda tensor."""
    if backend not in _BACKENDS:
        raise ValueError(f"init_process_group: backend {backend!r} is not available; tinyml.distributed "
                         f"supports {', '.join(map(repr, _BACKENDS))}")
    if _backend._group is not None:
        raise RuntimeError("trying to initialize the default process group twice")
    if init_method is not None:
        raise ValueError(f"init_process_group: init_method={init_method!r}: the mpi backend takes the ranks "
                         "from the MPI launcher (mpiexec); leave init_method unset")
    timeout_s = DEFAULT_TIMEOUT_S if timeout is None else (
        timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout))
    if not timeout_s > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    MPI = _backend.mpi()
    comm = MPI.COMM_WORLD.Dup()  # our own communicator: user MPI traffic on COMM_WORLD cannot match ours
    g = _backend._Group(backend, comm, timeout_s)
    for name, given, actual in (("world_size", world_size, g.size), ("rank", rank, g.rank)):
        if given != -1 and given != actual:
            comm.Free()
            raise ValueError(f"init_process_group: {name}={given} but the MPI launcher started this process "
                             f"with {name} {actual}")
    if backend == "nccl":
        try:
            g.nccl = _nccl_communicator(comm, MPI)
        except BaseException:
            comm.Free()
            raise
    _backend.set_group(g)
    fill_fast_types(g)
    _backend.watchdog.start(timeout_s)
    _backend.abort_on_uncaught_exception()


def _nccl_communicator(comm, MPI) -> nccl.Communicator:
    """Pick this rank's GPU, check every rank can run NCCL (all fail together, none waits for a
    peer that gave up), then ncclCommInitRank over rank 0's unique id, broadcast over MPI."""
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank, local_size = local.Get_rank(), local.Get_size()
    local.Free()
    if local_size > 1 and not _cuda.is_initialized():
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        if not visible or len(visible) > 1:  # one GPU per rank; a single listed GPU is the user's choice
            os.environ["CUDA_VISIBLE_DEVICES"] = visible[local_rank % len(visible)] if visible else str(
                local_rank)
    unique_id, error = None, None
    try:
        nccl.library()
        nccl.require_gpu()
        if comm.Get_rank() == 0:
            unique_id = nccl.get_unique_id()
    except nccl.NcclError as exc:
        error = str(exc)
    errors = comm.allgather(error)
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        r, e = failed[0]
        raise nccl.NcclError(f"init_process_group(backend='nccl'): rank {r}/{comm.Get_size()}: {e}")
    unique_id = comm.bcast(unique_id, root=0)
    return nccl.Communicator(comm.Get_rank(), comm.Get_size(), unique_id)


def is_initialized() -> bool:
    return _backend._group is not None


def get_rank(group=None) -> int:
    return _backend.group().rank


def get_world_size(group=None) -> int:
    return _backend.group().size


def get_backend(group=None) -> str:
    return _backend.group().backend


def destroy_process_group(group=None) -> None:
    """Leave the default group (MPI itself is finalized at interpreter exit, by mpi4py)."""
    g = _backend._group
    if g is None:
        raise RuntimeError("destroy_process_group: the default process group is not initialized")
    if g.nccl is not None:
        if g.broken is None:
            g.nccl.destroy()
        else:
            g.nccl.abort()
    if g.broken is None:
        g.comm.Free()
    _backend.set_group(None)
