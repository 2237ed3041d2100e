"""Run under `mpiexec -n 2`: every collective of tinyml.distributed against numpy, all dtypes.
Prints one `ok <check>` line per check; any failure raises (non-zero exit)."""
import os
import sys
import warnings

import numpy as np

# tinyml._C may be missing while another build runs: the reference kernels then serve, with a warning
warnings.simplefilter("ignore", RuntimeWarning)

import tinyml  # noqa: E402
import tinyml.distributed as dist  # noqa: E402
from tinyml.distributed import ReduceOp  # noqa: E402

dist.init_process_group("mpi")
rank, world = dist.get_rank(), dist.get_world_size()
if rank:  # one report: the two ranks' lines would interleave in mpiexec's output; failures still exit 1
    sys.stdout = open(os.devnull, "w")
assert dist.is_initialized() and dist.get_backend() == "mpi"
DTYPES = [tinyml.float32, tinyml.float64, tinyml.float16, tinyml.bfloat16, tinyml.int64, tinyml.int32,
          tinyml.int16, tinyml.int8, tinyml.uint8, tinyml.bool]
FLOATING = {tinyml.float32, tinyml.float64, tinyml.float16, tinyml.bfloat16}


def data(dtype, r, shape=(3, 5), salt=0):
    """Rank r's values: the same on every rank (each rank recomputes its peers' inputs)."""
    rng = np.random.default_rng(1000 * salt + r)
    if dtype is tinyml.bool:
        return rng.random(shape) < 0.5
    if dtype in FLOATING:
        return rng.standard_normal(shape).astype(np.float32).astype(dtype.np)
    return rng.integers(0, 4, shape).astype(dtype.np)


def expect(op, arrays, dtype):
    wide = [a.astype(np.float64) for a in arrays]
    reducer = {ReduceOp.SUM: np.sum, ReduceOp.AVG: np.mean, ReduceOp.PRODUCT: np.prod, ReduceOp.MIN: np.min,
               ReduceOp.MAX: np.max}[op]
    out = reducer(np.stack(wide), axis=0)
    return (out != 0) if dtype is tinyml.bool else out


def check(got, want, dtype, what):
    got = got.astype(np.float64) if dtype is not tinyml.bool else got
    tol = {tinyml.float16: 2e-3, tinyml.bfloat16: 1e-2}.get(dtype, 1e-6)
    if dtype in FLOATING:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


for dtype in DTYPES:
    ops = [ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX]
    ops += [ReduceOp.AVG] if dtype in FLOATING else []
    for i, op in enumerate(ops):
        inputs = [data(dtype, r, salt=i) for r in range(world)]
        t = tinyml.tensor(inputs[rank].copy())
        dist.all_reduce(t, op=op)
        check(t.numpy(), expect(op, inputs, dtype), dtype, f"all_reduce {op} {dtype}")
        # a non-contiguous view: reduced through a contiguous copy, written back into the view
        base = tinyml.tensor(np.ascontiguousarray(inputs[rank].T))
        view = base.T
        work = dist.all_reduce(view, op=op, async_op=True)
        assert work.wait() and work.is_completed()
        check(base.numpy().T, expect(op, inputs, dtype), dtype, f"all_reduce view {op} {dtype}")
    print("ok all_reduce", dtype, flush=True)

    inputs = [data(dtype, r, salt=7) for r in range(world)]
    t = tinyml.tensor(inputs[rank].copy())
    dist.broadcast(t, src=1)
    np.testing.assert_array_equal(t.numpy(), inputs[1])

    outs = [tinyml.zeros(3, 5, dtype=dtype) for _ in range(world)]
    dist.all_gather(outs, tinyml.tensor(inputs[rank].copy()))
    for r in range(world):
        np.testing.assert_array_equal(outs[r].numpy(), inputs[r])
    cat = tinyml.zeros(3 * world, 5, dtype=dtype)
    dist.all_gather_into_tensor(cat, tinyml.tensor(inputs[rank].copy()))
    np.testing.assert_array_equal(cat.numpy(), np.concatenate(inputs))
    stacked = tinyml.zeros(world, 3, 5, dtype=dtype)
    dist.all_gather_into_tensor(stacked, tinyml.tensor(inputs[rank].copy()))
    np.testing.assert_array_equal(stacked.numpy(), np.stack(inputs))

    op = ReduceOp.AVG if dtype in FLOATING else ReduceOp.SUM
    chunks = [data(dtype, r, shape=(world, 2, 3), salt=9) for r in range(world)]
    out = tinyml.zeros(2, 3, dtype=dtype)
    dist.reduce_scatter(out, [tinyml.tensor(c.copy()) for c in chunks[rank]], op=op)
    check(out.numpy(), expect(op, [c[rank] for c in chunks], dtype), dtype, f"reduce_scatter {dtype}")
    out = tinyml.zeros(2, 3, dtype=dtype)
    dist.reduce_scatter_tensor(out, tinyml.tensor(chunks[rank].reshape(world * 2, 3).copy()), op=ReduceOp.MAX)
    want = expect(ReduceOp.MAX, [c[rank] for c in chunks], dtype)
    check(out.numpy(), want, dtype, f"reduce_scatter_tensor {dtype}")
    base = tinyml.zeros(3, 2, dtype=dtype)  # a strided output: received into a temporary, copied back
    stacked_input = tinyml.tensor(chunks[rank].reshape(world * 2, 3).copy())
    dist.reduce_scatter_tensor(base.T, stacked_input, op=ReduceOp.MAX)
    check(base.numpy().T, want, dtype, f"reduce_scatter_tensor into a view {dtype}")
    print("ok gather/scatter", dtype, flush=True)

# NaN and inf propagate through the reduction, as in torch
t = tinyml.tensor(np.array([np.nan if rank == 0 else 1.0, np.inf, 2.0], np.float32))
dist.all_reduce(t)
got = t.numpy()
assert np.isnan(got[0]) and got[1] == np.inf and got[2] == 2.0 * world, got
# a 0-d tensor and an empty one
t = tinyml.tensor(np.float64(rank + 1))
dist.all_reduce(t, op=ReduceOp.MAX)
assert t.item() == world
t = tinyml.zeros(0, 3)
dist.all_reduce(t)
dist.broadcast(t, src=0)
dist.barrier()
# the blocking path remembers the last array it reduced: again, after another dtype, after its
# dtype changed in place, and a strided view of it (the non-blocking path) all stay right
a = tinyml.tensor(np.full(4, rank + 1.0, np.float32))
dist.all_reduce(a)
dist.all_reduce(a)
b = tinyml.tensor(np.full(4, rank + 1, np.int64))
dist.all_reduce(b, op=ReduceOp.PRODUCT)
dist.all_reduce(a, op=ReduceOp.AVG)
want = world * sum(r + 1.0 for r in range(world))
assert a.numpy().tolist() == [want] * 4 and b.numpy().tolist() == [np.prod(np.arange(1, world + 1))] * 4
a._data.dtype = np.int32  # the same buffer read as int32 (float32 bits): the cached datatype must not serve
bits = a._data.copy()
dist.all_reduce(a)
assert (a._data == bits * np.int32(world)).all()  # an int32 sum of the bits, not a float32 sum
view = tinyml.tensor(np.arange(8.0, dtype=np.float32) * (rank + 1))[::2]
dist.all_reduce(view)
assert view.numpy().tolist() == (np.arange(0.0, 8.0, 2) * sum(r + 1 for r in range(world))).tolist()
print("ok edge cases", flush=True)

# errors name the values involved
for call, words in [
    (lambda: dist.all_reduce(tinyml.ones(3, dtype=tinyml.int32), op=ReduceOp.AVG), ["AVG", "int32"]),
    (lambda: dist.all_reduce(tinyml.ones(3), op="mean"), ["'mean'", "ReduceOp"]),
    (lambda: dist.broadcast(tinyml.ones(3), src=world), [f"src={world}", f"world size {world}"]),
    (lambda: dist.all_gather([tinyml.ones(2)], tinyml.ones(2)), ["1 tensors", f"world size is {world}"]),
    (lambda: dist.all_gather([tinyml.ones(3)] * world, tinyml.ones(2)), ["float32[3]", "float32[2]"]),
    (lambda: dist.all_gather_into_tensor(tinyml.ones(5), tinyml.ones(2)), ["[5]", "[2]"]),
    (lambda: dist.all_reduce(np.ones(3)), ["tinyml Tensor", "ndarray"]),
    (lambda: dist.all_reduce(tinyml.ones(3), group="pairs"), ["group='pairs'", "default (world) group"]),
    (lambda: dist.barrier(device_ids=[0]), ["device_ids=[0]", "nccl"]),
]:
    try:
        call()
    except (ValueError, RuntimeError, TypeError) as exc:
        assert all(w in str(exc) for w in words), (str(exc), words)
    else:
        raise AssertionError(f"no error; expected one naming {words}")
dist.destroy_process_group()
assert not dist.is_initialized()
print("ok errors", flush=True)
