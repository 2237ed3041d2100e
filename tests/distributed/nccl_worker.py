"""The nccl backend's collectives on cuda tensors against numpy, on a real GPU per rank.

    python tests/distributed/nccl_worker.py                 # 1 rank (MPI singleton), a valid communicator
    mpiexec -n 2 python tests/distributed/nccl_worker.py    # 2 ranks, needs 2 GPUs

Every rank builds every rank's input from the rank's seed, so each can compute the expected result
with numpy. Rank 0 prints "ok <check>" lines; any failure raises (and the launcher ends every rank).
"""
import warnings

import ml_dtypes
import numpy as np

warnings.simplefilter("ignore", RuntimeWarning)  # tinyml._C may be rebuilding: the reference kernels serve

import tinyml  # noqa: E402
import tinyml.distributed as dist  # noqa: E402
from tinyml.distributed import ReduceOp  # noqa: E402

dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
assert dist.get_backend() == "nccl"

DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16, np.int32, np.int64, np.int8, np.uint8,
          np.bool_]
NUMPY_OPS = {ReduceOp.SUM: np.sum, ReduceOp.PRODUCT: np.prod, ReduceOp.MAX: np.max, ReduceOp.MIN: np.min,
             ReduceOp.AVG: np.mean}


def data(r: int, dtype, shape=(3, 5)) -> np.ndarray:
    rng = np.random.default_rng(100 + r)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(1, 4, shape).astype(dtype)  # small: products of 2 ranks stay in range
    return rng.uniform(0.5, 2.0, shape).astype(dtype)


def cuda(x: np.ndarray):
    return tinyml.tensor(x, device="cuda")


def host(t) -> np.ndarray:
    return t.cpu().numpy()


def check(got: np.ndarray, want: np.ndarray, what: str) -> None:
    tol = 2e-2 if got.dtype.itemsize == 2 and got.dtype.kind in "fV" else 1e-6
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol,
                               err_msg=what)


def log(line: str) -> None:
    if rank == 0:
        print(f"ok {line}", flush=True)


everyone = range(world)
for dtype in DTYPES:
    name = np.dtype(dtype).name
    for op, reduce in NUMPY_OPS.items():
        if op == ReduceOp.AVG and np.dtype(dtype).kind not in "fV":
            continue
        stacked = np.stack([data(r, dtype) for r in everyone]).astype(np.float64)
        want = reduce(stacked, axis=0)
        if dtype == np.bool_:
            want = (np.max if op in (ReduceOp.SUM, ReduceOp.MAX) else np.min)(stacked, axis=0)
        t = cuda(data(rank, dtype))
        dist.all_reduce(t, op)
        check(host(t), want, f"all_reduce({op}) {name}")
    log(f"all_reduce {name}")

    t = cuda(data(rank, dtype))
    dist.broadcast(t, src=world - 1)
    check(host(t), data(world - 1, dtype), f"broadcast {name}")
    outs = [cuda(np.zeros((3, 5), dtype)) for _ in everyone]
    dist.all_gather(outs, cuda(data(rank, dtype)))
    for r in everyone:
        check(host(outs[r]), data(r, dtype), f"all_gather {name}")
    big = cuda(np.zeros((world * 3, 5), dtype))
    dist.all_gather_into_tensor(big, cuda(data(rank, dtype)))
    check(host(big), np.concatenate([data(r, dtype) for r in everyone]), f"all_gather_into_tensor {name}")
    if dtype != np.bool_:
        inputs = [data(rank * world + r, dtype) for r in everyone]  # input_list[r] of this rank
        out = cuda(np.zeros((3, 5), dtype))
        dist.reduce_scatter(out, [cuda(x) for x in inputs])
        want = sum(data(s * world + rank, dtype).astype(np.float64) for s in everyone)
        check(host(out), want, f"reduce_scatter {name}")
        out = cuda(np.zeros((3, 5), dtype))
        dist.reduce_scatter_tensor(out, cuda(np.concatenate(inputs)), op=ReduceOp.MAX)
        want = np.max([data(s * world + rank, dtype) for s in everyone], axis=0)
        check(host(out), want, f"reduce_scatter_tensor {name}")
    log(f"gather/scatter {name}")

# stream order: a Triton kernel queued right after the collective reads its result
x = cuda(np.full(1 << 20, rank + 1.0, np.float32))
work = dist.all_reduce(x, async_op=True)
work.wait()
y = x * 2.0
check(host(y)[:4], np.full(4, 2.0 * sum(r + 1.0 for r in everyone)), "stream order")
assert work.is_completed()
dist.barrier()
log("async work, stream order and barrier")

for bad, kind in ((tinyml.ones(3), RuntimeError), (cuda(np.ones((3, 4), np.float32)).t(), ValueError),
                  (cuda(np.ones(3, np.int16)), ValueError)):
    try:
        dist.all_reduce(bad)
    except kind as exc:
        assert "all_reduce" in str(exc), exc
    else:
        raise AssertionError(f"all_reduce accepted {bad.device} {bad.dtype} {list(bad.shape)}")
log("errors")
dist.destroy_process_group()
