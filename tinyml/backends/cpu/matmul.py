"""cpu matmul and linear: numpy's BLAS, one thread per slice, the slices on tinyml's own threads.

Why not let BLAS thread itself: OpenBLAS keeps its worker threads spinning for a long time after
each GEMM, and the OpenMP threads of the C++ kernels want the same cores right after. Two pools
spinning against each other made a 1 ms GEMM + GELU take 8 ms on 2 cores. So tinyml pins BLAS to
one thread (threadpoolctl) and splits a large product by rows of its output over
`tinyml.get_num_threads()` threads: the calling thread takes the first slice, idle workers sleep
instead of spinning, and numpy releases the GIL inside each BLAS call. Half types and 1-d operands
return NotImplemented: the reference converts half types to float32 and handles the vector cases.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["matmul", "linear"]

_MIN_FLOPS_PER_THREAD = 1 << 22  # below ~4 MFLOP a slice costs more to hand out than it saves
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def _threads() -> int:
    from ...threads import get_num_threads

    return get_num_threads()


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinyml-blas")
            _pool_size = workers
        return _pool


def _rows_slices(m: int, parts: int) -> list[slice]:
    step = -(-m // parts)
    return [slice(i, min(i + step, m)) for i in range(0, m, step)]


def matmul(a, b):
    """a @ b like the reference kernel, split by output rows when it is worth it."""
    if a.dtype.itemsize == 2 or a.ndim < 2 or b.ndim < 2:
        return NotImplemented
    if b.ndim == 2 and a.ndim > 2 and a.flags["C_CONTIGUOUS"]:  # a batch against a weight: one GEMM
        # (the row count written out: numpy refuses reshape(-1, 0))
        rows = int(np.prod(a.shape[:-1]))
        return matmul(a.reshape(rows, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))) if a.ndim + b.ndim > 4 else 1
    parts = min(_threads(), m, max(1, 2 * batch * m * n * k // _MIN_FLOPS_PER_THREAD))
    if parts <= 1:
        return np.matmul(a, b)
    out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (m, n), dtype=np.result_type(a, b))
    slices = _rows_slices(m, parts)
    pool = _executor(parts - 1)
    futures = [pool.submit(np.matmul, a[..., s, :], b, out=out[..., s, :]) for s in slices[1:]]
    np.matmul(a[..., slices[0], :], b, out=out[..., slices[0], :])
    for f in futures:
        f.result()
    return out


def linear(x, weight, bias):
    out = matmul(x, weight.T)
    if out is NotImplemented:
        return NotImplemented
    if bias is not None:
        np.add(out, bias, out=out, casting="unsafe")
    return out
