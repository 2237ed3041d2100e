"""Collectives with torch.distributed's names and semantics, over MPI on cpu tensors (here) and
over NCCL on cuda tensors (nccl_collectives.py, when the group's backend is "nccl").

A tensor's numpy buffer goes to MPI as it is when it is C-contiguous and of a type MPI reduces
(in place, no copy). Otherwise a contiguous wire buffer is reduced and copied back:
- float16 and bfloat16 are reduced in float32 (MPICH has no half-precision reduction), which
  rounds once at the end instead of at every step, so the result is at least as accurate as
  NCCL's or gloo's half-precision sum;
- bool is reduced as uint8 (a view, no copy): SUM is logical or (MAX), PRODUCT logical and (MIN),
  as torch.distributed does on bool tensors.
AVG is SUM then one in-place division by the world size, for floating dtypes only.
A synchronous all_reduce of a contiguous float32/64 or 32/64-bit integer buffer is one blocking
MPI_Allreduce, bounded by _backend's watchdog (a timeout ends the job instead of raising): called
from C (native_mpi.py, csrc/distributed.cpp) on an MPICH-ABI library, else through mpi4py.
"""
from __future__ import annotations

import weakref

import numpy as np

from ..tensor import Tensor
from . import _backend, native_mpi
from . import nccl_collectives as _nccl
from ._backend import Work, group, mpi


class ReduceOp:
    """torch.distributed.ReduceOp: the reductions of all_reduce and reduce_scatter."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


_OPS = (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX)
_MPI_OPS: dict = {}  # ReduceOp -> MPI.Op, filled on first use (mpi4py loads lazily)
_BOOL_OP = {ReduceOp.SUM: ReduceOp.MAX, ReduceOp.MAX: ReduceOp.MAX, ReduceOp.PRODUCT: ReduceOp.MIN,
            ReduceOp.MIN: ReduceOp.MIN}


def _array(tensor, what: str) -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what} expects a tinyml Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise RuntimeError(f"{what}: the mpi backend works on cpu tensors; got a tensor on {tensor.device}")
    return tensor._data


def _mpi_op(op, arr: np.ndarray, what: str):
    if op not in _OPS:
        raise ValueError(f"{what}: unknown reduce op {op!r}; expected one of ReduceOp.SUM, AVG, PRODUCT, "
                         "MIN, MAX")
    if op == ReduceOp.AVG and arr.dtype.kind not in "fV":  # V: bfloat16 (ml_dtypes)
        raise RuntimeError(f"{what}: ReduceOp.AVG needs a floating dtype, got {arr.dtype.name}")
    if arr.dtype == np.bool_:
        op = _BOOL_OP[op]
    if not _MPI_OPS:
        MPI = mpi()
        _MPI_OPS.update({ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
                         ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX})
    return _MPI_OPS[op]


def _wire(arr: np.ndarray) -> np.ndarray:
    """A contiguous array MPI can reduce holding arr's values: arr itself when possible."""
    if arr.flags.c_contiguous and arr.dtype.kind in "fiu" and arr.dtype.itemsize > 2:
        return arr  # the common case, first: float32/64 and the wide integers, in place
    if arr.dtype == np.float16 or arr.dtype.name == "bfloat16":
        return np.require(arr, np.float32, "C")  # a fresh float32 copy
    if arr.dtype == np.bool_:
        arr = np.require(arr, None, "C")
        return arr.view(np.uint8)
    return np.require(arr, None, "C")


def _bump(tensor: Tensor) -> None:
    tensor._version[0] += 1  # written in place: autograd's saved-tensor checks must see it


def _finish(work_fn, async_op: bool):
    requests, finish, what = work_fn
    work = Work(requests, finish, what)
    if async_op:
        return work
    work.wait()
    return None


_FAST_TYPES: dict = {}  # numpy dtype -> MPI datatype of the blocking path (fill_fast_types, at init)
_IN_PLACE = None
_AVG = ReduceOp.AVG
_watchdog = _backend.watchdog
# the last array the blocking path took (a weak reference: it must not keep the buffer alive), its
# dtype and MPI datatype: a loop reducing the same tensor skips the dtype and layout checks
_last_fast: list = [None, None, None]


# tinyml._C's blocking MPI_Allreduce (native_mpi.py): (array, version, op) -> whether it reduced
# the array in place; None where the MPI library or the build is not one it serves
_native_all_reduce = None


def fill_fast_types(g) -> None:
    """The MPI datatypes and ops of the blocking all_reduce path (mpi4py is loaded by now), and the
    C call on `g`'s communicator when this MPI is one it serves."""
    global _IN_PLACE, _native_all_reduce
    MPI = mpi()
    _FAST_TYPES.update({np.dtype(k): v for k, v in (
        (np.float32, MPI.FLOAT), (np.float64, MPI.DOUBLE), (np.int32, MPI.INT32_T), (np.int64, MPI.INT64_T),
        (np.uint32, MPI.UINT32_T), (np.uint64, MPI.UINT64_T))})
    _MPI_OPS.update({ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
                     ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX})
    _IN_PLACE = MPI.IN_PLACE
    _native_all_reduce = None if g.nccl is not None else native_mpi.enable(MPI, g.comm, g.size, _MPI_OPS)


def all_reduce(tensor: Tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce `tensor` over all ranks, in place: x <- op_r(x_r) (AVG: sum_r(x_r) / world_size)."""
    native = _native_all_reduce
    if (native is not None and not async_op and group is None and type(tensor) is Tensor
            and native(tensor._data, tensor._version, op)):
        return None  # one MPI_Allreduce from C, bounded by the watchdog (it declines what it does not serve)
    g = _backend._group
    if (g is not None and g.broken is None and g.nccl is None and not async_op and group is None
            and type(tensor) is Tensor):
        # without the C call: straight to a blocking MPI_Allreduce on the buffer with its datatype
        # given (mpi4py's own type lookup costs more than these checks); the watchdog bounds it
        arr = tensor._data
        seen, seen_dtype, datatype = _last_fast
        if seen is None or seen() is not arr or arr.dtype is not seen_dtype:  # not the last array reduced
            datatype = _FAST_TYPES.get(arr.dtype)
            if datatype is not None and type(arr) is np.ndarray and arr.flags.c_contiguous:
                _last_fast[:] = weakref.ref(arr), arr.dtype, datatype
            else:
                datatype = None
        mpi_op = _MPI_OPS.get(op)
        if datatype is not None and mpi_op is not None and (op != _AVG or arr.dtype.kind == "f"):
            _watchdog.busy = ("all_reduce", op, arr)
            try:
                g.comm.Allreduce(_IN_PLACE, [arr, datatype], mpi_op)
            finally:
                _watchdog.busy = None
            if op == _AVG:
                np.divide(arr, g.size, out=arr)
            tensor._version[0] += 1
            return None
    g = _default_group(group)
    if g.nccl is not None:
        return _nccl.all_reduce(g, tensor, op, async_op)
    arr = _array(tensor, "all_reduce")
    mpi_op = _mpi_op(op, arr, "all_reduce")
    buf = _wire(arr)
    request = g.comm.Iallreduce(mpi().IN_PLACE, buf, op=mpi_op)

    def finish():
        if op == ReduceOp.AVG:
            np.divide(buf, g.size, out=buf)
        if buf is not arr and buf.base is not arr:  # a copy (not arr or a bool array's uint8 view)
            np.copyto(arr, buf, casting="unsafe")
        _bump(tensor)

    what = lambda: f"all_reduce({op}) of {arr.dtype.name}{list(arr.shape)}"  # noqa: E731
    return _finish(([request], finish, what), async_op)


def broadcast(tensor: Tensor, src: int, group=None, async_op: bool = False):
    """Copy rank `src`'s tensor into `tensor` on every rank (in place)."""
    g = _default_group(group)
    _check_rank(src, g, "broadcast", "src")
    if g.nccl is not None:
        return _nccl.broadcast(g, tensor, src, async_op)
    arr = _array(tensor, "broadcast")
    buf = np.require(arr, None, "C")
    raw = buf.reshape(-1).view(np.uint8) if buf.size else buf.view(np.uint8)
    request = g.comm.Ibcast(raw, root=src)

    def finish():
        if buf is not arr:
            np.copyto(arr, buf)
        _bump(tensor)

    what = lambda: f"broadcast(src={src}) of {arr.dtype.name}{list(arr.shape)}"  # noqa: E731
    return _finish(([request], finish, what), async_op)


def all_gather(tensor_list: list, tensor: Tensor, group=None, async_op: bool = False):
    """tensor_list[r] <- rank r's `tensor`, on every rank."""
    g = _default_group(group)
    if g.nccl is not None:
        return _nccl.all_gather(g, tensor_list, tensor, async_op)
    arr = _array(tensor, "all_gather")
    if len(tensor_list) != g.size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors; the world size is "
                         f"{g.size}")
    outs = [_array(t, "all_gather") for t in tensor_list]
    for r, out in enumerate(outs):
        if out.shape != arr.shape or out.dtype != arr.dtype:
            raise ValueError(f"all_gather: tensor_list[{r}] is {out.dtype.name}{list(out.shape)}; the input "
                             f"is {arr.dtype.name}{list(arr.shape)}")
    gathered = np.empty((g.size,) + arr.shape, arr.dtype)
    request = _iallgather(g, arr, gathered)

    def finish():
        for t, out, part in zip(tensor_list, outs, gathered):
            np.copyto(out, part)
            _bump(t)

    return _finish(([request], finish, lambda: f"all_gather of {arr.dtype.name}{list(arr.shape)}"), async_op)


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group=None, async_op: bool = False):
    """Every rank's input, concatenated along dim 0 (output of shape (world*n, ...)) or stacked
    (output of shape (world, n, ...)), into `output_tensor`."""
    g = _default_group(group)
    if g.nccl is not None:
        return _nccl.all_gather_into_tensor(g, output_tensor, input_tensor, async_op, _check_world_shape)
    arr = _array(input_tensor, "all_gather_into_tensor")
    out = _array(output_tensor, "all_gather_into_tensor")
    _check_world_shape(out, arr, g, "all_gather_into_tensor", "output_tensor", "input_tensor")
    gathered = np.require(out, None, "C")
    request = _iallgather(g, arr, gathered)

    def finish():
        if gathered is not out:
            np.copyto(out, gathered)
        _bump(output_tensor)

    what = lambda: f"all_gather_into_tensor of {arr.dtype.name}{list(arr.shape)}"  # noqa: E731
    return _finish(([request], finish, what), async_op)


def reduce_scatter(output: Tensor, input_list: list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """output on rank r <- op over ranks of input_list[r]."""
    g = _default_group(group)
    if g.nccl is not None:
        return _nccl.reduce_scatter(g, output, input_list, op, async_op)
    out = _array(output, "reduce_scatter")
    if len(input_list) != g.size:
        raise ValueError(f"reduce_scatter: input_list has {len(input_list)} tensors; the world size is "
                         f"{g.size}")
    ins = [_array(t, "reduce_scatter") for t in input_list]
    for r, a in enumerate(ins):
        if a.shape != out.shape or a.dtype != out.dtype:
            raise ValueError(f"reduce_scatter: input_list[{r}] is {a.dtype.name}{list(a.shape)}; the output "
                             f"is {out.dtype.name}{list(out.shape)}")
    return _reduce_scatter(output, np.stack(ins) if ins[0].ndim else np.array(ins), op, g, "reduce_scatter",
                           async_op)


def reduce_scatter_tensor(output: Tensor, input: Tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """output on rank r <- op over ranks of the r-th of world_size equal chunks of `input` along
    dim 0 (input of shape (world*n, ...) or (world, n, ...))."""
    g = _default_group(group)
    if g.nccl is not None:
        return _nccl.reduce_scatter_tensor(g, output, input, op, async_op, _check_world_shape)
    out = _array(output, "reduce_scatter_tensor")
    arr = _array(input, "reduce_scatter_tensor")
    _check_world_shape(arr, out, g, "reduce_scatter_tensor", "input", "output")
    return _reduce_scatter(output, arr, op, g, "reduce_scatter_tensor", async_op)


def _reduce_scatter(output: Tensor, stacked: np.ndarray, op, g, what: str, async_op: bool):
    out = output._data
    mpi_op = _mpi_op(op, out, what)
    send = _wire(stacked)
    # received straight into the output when MPI reduces its dtype and it is contiguous (no copy)
    direct = type(out) is np.ndarray and out.flags.c_contiguous and out.dtype == send.dtype
    recv = out.reshape(-1) if direct else np.empty(send.size // g.size, send.dtype)
    request = g.comm.Ireduce_scatter_block(send, recv, op=mpi_op)

    def finish():
        if op == ReduceOp.AVG:
            np.divide(recv, g.size, out=recv)
        if not direct:
            np.copyto(out, recv.reshape(out.shape), casting="unsafe")
        _bump(output)

    describe = lambda: f"{what}({op}) of {out.dtype.name}{list(out.shape)}"  # noqa: E731
    return _finish(([request], finish, describe), async_op)


def barrier(group=None, async_op: bool = False, device_ids=None):
    """Block until every rank has reached the barrier (device_ids: NCCL's, one GPU per rank here:
    None or [the rank's device index 0])."""
    g = _default_group(group)
    if g.nccl is not None:
        if device_ids not in (None, [0], (0,)):
            raise ValueError(f"barrier: device_ids={device_ids!r}; each rank of the nccl backend drives one "
                             "GPU (its device 0): pass None or [0]")
        return _nccl.barrier(g, async_op)
    if device_ids is not None:
        raise ValueError(f"barrier: device_ids={device_ids!r} is for the nccl backend; the mpi backend "
                         "takes None")
    return _finish(([g.comm.Ibarrier()], None, lambda: "barrier"), async_op)


def _iallgather(g, arr: np.ndarray, gathered: np.ndarray):
    send = np.require(arr, None, "C").reshape(-1).view(np.uint8)
    return g.comm.Iallgather(send, gathered.reshape(-1).view(np.uint8))


def _check_world_shape(big: np.ndarray, small: np.ndarray, g, what: str, big_name: str,
                       small_name: str) -> None:
    if big.dtype != small.dtype:
        raise ValueError(f"{what}: {big_name} is {big.dtype.name} and {small_name} is {small.dtype.name}")
    stacked = (g.size,) + small.shape
    concatenated = (g.size * small.shape[0],) + small.shape[1:] if small.ndim else None
    if big.shape != stacked and big.shape != concatenated:
        raise ValueError(f"{what}: {big_name} has shape {list(big.shape)}; with {small_name} of shape "
                         f"{list(small.shape)} and world size {g.size} it must be {list(stacked)}"
                         + (f" or {list(concatenated)}" if concatenated else ""))


def _check_rank(rank, g, what: str, name: str) -> None:
    if not isinstance(rank, (int, np.integer)) or not 0 <= rank < g.size:
        raise ValueError(f"{what}: {name}={rank!r} is not a rank of this group (world size {g.size})")


def _default_group(given=None):
    if given is not None:  # the only group is the world: new_group is not implemented
        raise ValueError(f"group={given!r}: tinyml.distributed has only the default (world) group; pass "
                         "group=None")
    return group()
