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
whose peer died does not hang; an exception nothing catches ends every rank (MPI_Abort after
its traceback) instead of leaving the others waiting. The only backend is "mpi" (mpi4py, loaded
on first use); there is no NCCL backend.
"""
from __future__ import annotations

import datetime

from . import _backend
from ._backend import DEFAULT_TIMEOUT_S, Work
from .collectives import (
    ReduceOp,
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    barrier,
    broadcast,
    reduce_scatter,
    reduce_scatter_tensor,
)
from .ddp import DistributedDataParallel
from .sampler import DistributedSampler

__all__ = ["init_process_group", "is_initialized", "is_available", "get_rank", "get_world_size",
           "get_backend", "destroy_process_group", "ReduceOp", "Work", "all_reduce", "broadcast",
           "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "barrier",
           "DistributedDataParallel", "DistributedSampler"]

_BACKENDS = ("mpi",)


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
    seconds; default 30 minutes) bounds every wait on a collective."""
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
    _backend.set_group(g)
    _backend.abort_on_uncaught_exception()


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
    if g.broken is None:
        g.comm.Free()
    _backend.set_group(None)
