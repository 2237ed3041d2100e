"""Run under `mpiexec -n 2`: the blocking all_reduce called from C (tinyml/distributed/native_mpi.py,
csrc/distributed.cpp): the arrays and ops it serves against numpy, the ones it declines (to the Python
path, with nothing touched), its errors, and that it stops serving when the group ends.
Rank 0 prints one `ok <check>` line per check; any failure raises (non-zero exit)."""
import os
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore", RuntimeWarning)  # tinyml._C may be rebuilding: the reference kernels serve

import tinyml  # noqa: E402
import tinyml.distributed as dist  # noqa: E402
from tinyml.distributed import ReduceOp, collectives, native_mpi  # noqa: E402

dist.init_process_group("mpi")
MPI = dist._backend.mpi()
rank, world = dist.get_rank(), dist.get_world_size()
assert world == 2, "run me on 2 ranks"
serves = native_mpi.mpich_abi(MPI) and native_mpi.native_module() is not None
print(f"native {collectives._native_all_reduce is not None} expected {serves}", flush=True)
if rank:
    sys.stdout = open(os.devnull, "w")
if not serves:
    print("ok not served here (not an MPICH-ABI library, or tinyml._C lacks the binding)")
    sys.exit(0)
call = collectives._native_all_reduce
assert native_mpi.busy() is None  # nothing in flight


def inputs(dtype, r, salt):
    rng = np.random.default_rng(100 * salt + r)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(7).astype(dtype)
    return rng.integers(1, 5, 7).astype(dtype)


REDUCE = {ReduceOp.SUM: np.add, ReduceOp.PRODUCT: np.multiply, ReduceOp.MIN: np.minimum,
          ReduceOp.MAX: np.maximum}
# every dtype the C call serves; with 2 ranks each reduction is one exact IEEE/integer operation,
# so the result equals numpy's bit for bit (AVG: the sum, then numpy's division by the world size)
SERVED = ["float32", "float64", "int32", "uint32", "int64", "uint64", "longlong", "ulonglong"]
for salt, dtype in enumerate(SERVED):
    ops = list(REDUCE) + ([ReduceOp.AVG] if np.dtype(dtype).kind == "f" else [])
    for op in ops:
        mine, theirs = inputs(dtype, rank, salt), inputs(dtype, 1 - rank, salt)
        want = np.add(mine, theirs) / np.array(world, mine.dtype) if op == ReduceOp.AVG else REDUCE[op](
            mine, theirs)
        version = [5]
        assert call(mine, version, op) is True, (dtype, op)
        np.testing.assert_array_equal(mine, want.astype(dtype), err_msg=f"{dtype} {op}")
        assert version == [6], version
print("ok served dtypes and ops")

t = tinyml.tensor(np.full((2, 3), rank + 1.0, np.float32))
before = t._version[0]
dist.all_reduce(t, op=ReduceOp.AVG)
assert t.numpy().tolist() == [[1.5] * 3] * 2 and t._version[0] == before + 1
scalar, empty = np.array(rank + 2.0), np.zeros((0, 4))
assert call(scalar, [0], ReduceOp.MAX) and scalar == 3.0
assert call(empty, [0], ReduceOp.SUM) and empty.shape == (0, 4)
print("ok tensors, 0-d and empty arrays")


class Subclass(np.ndarray):
    pass


readonly = np.ones(4, np.float32)
readonly.flags.writeable = False
unaligned = np.frombuffer(bytearray(4 * 4 + 1), np.float32, count=4, offset=1)
unaligned[:] = rank + 1
declined = {
    "strided view": (np.ones(8, np.float32)[::2], ReduceOp.SUM),
    "read-only": (readonly, ReduceOp.SUM),
    "unaligned": (unaligned, ReduceOp.SUM),
    "float16": (np.ones(4, np.float16), ReduceOp.SUM),
    "bool": (np.ones(4, bool), ReduceOp.SUM),
    "int8": (np.ones(4, np.int8), ReduceOp.SUM),
    "complex64": (np.ones(4, np.complex64), ReduceOp.SUM),
    "byte-swapped": (np.ones(4, ">f4"), ReduceOp.SUM),
    "subclass": (np.ones(4, np.float32).view(Subclass), ReduceOp.SUM),
    "a list": ([1.0, 2.0], ReduceOp.SUM),
    "AVG of int32": (np.ones(4, np.int32), ReduceOp.AVG),
    "an equal op string": (np.ones(4, np.float32), "".join(["s", "um"])),
    "an unknown op": (np.ones(4, np.float32), "mean"),
}
for what, (arr, op) in declined.items():
    snapshot = np.array(arr, copy=True)
    version = [3]
    assert call(arr, version, op) is False, what
    np.testing.assert_array_equal(np.asarray(arr), snapshot, err_msg=what)
    assert version == [3], what
# the Python path serves the declined layouts the C call leaves to it
t = tinyml.tensor(np.zeros(4, np.float32))
t._data = unaligned
dist.all_reduce(t)
assert unaligned.tolist() == [3.0] * 4, unaligned
t = tinyml.tensor(np.full(4, rank + 1.0, np.float32))
dist.all_reduce(t, op="".join(["m", "ax"]))
assert t.numpy().tolist() == [2.0] * 4
print("ok declined arrays and ops")

for bad in (None, (0,), [], ["0"]):
    try:
        call(np.ones(2, np.float32), bad, ReduceOp.SUM)
    except TypeError as exc:
        assert "_version list" in str(exc), exc
    else:
        raise AssertionError(f"version={bad!r} was accepted")
try:
    call(np.ones(2, np.float32))
except TypeError as exc:
    assert "takes 3 arguments, got 1" in str(exc), exc
else:
    raise AssertionError("a call with 1 argument was accepted")


class NullComm:  # the handle of MPI_COMM_NULL: MPI_Allreduce returns an error (errors return here)
    handle = MPI.COMM_NULL.handle


native_mpi.enable(MPI, NullComm, world, collectives._MPI_OPS)
arr, version = np.ones(3, np.float32), [0]
try:
    call(arr, version, ReduceOp.SUM)
except RuntimeError as exc:
    assert "MPI_Allreduce of 3 elements returned MPI error" in str(exc), exc
else:
    raise AssertionError("MPI_Allreduce on MPI_COMM_NULL did not raise")
assert version == [0] and arr.tolist() == [1.0] * 3
g = dist._backend.group()
native_mpi.enable(MPI, g.comm, g.size, collectives._MPI_OPS)
assert call(arr, version, ReduceOp.SUM) and arr.tolist() == [2.0] * 3
print("ok errors")

dist.destroy_process_group()
assert call(np.ones(2, np.float32), [0], ReduceOp.SUM) is False  # off once the group is gone
try:
    dist.all_reduce(tinyml.ones(2))
except RuntimeError as exc:
    assert "has not been initialized" in str(exc), exc
else:
    raise AssertionError("all_reduce after destroy_process_group did not raise")
dist.init_process_group("mpi")  # a new group: the C call serves its communicator
t = tinyml.ones(2)
dist.all_reduce(t)
assert t.numpy().tolist() == [2.0, 2.0] and collectives._native_all_reduce is not None
print("ok destroy and init again")
