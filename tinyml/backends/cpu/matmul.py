"""cpu matmul and linear: numpy's BLAS, one thread per slice, the slices on tinyml's own threads.

Why not let BLAS thread itself: OpenBLAS keeps its worker threads spinning for a long time after
each GEMM, and the OpenMP threads of the C++ kernels want the same cores right after. Two pools
spinning against each other made a 1 ms GEMM + GELU take 8 ms on 2 cores. So tinyml pins BLAS to
one thread (threadpoolctl) and splits a large product by rows of its output over
`tinyml.get_num_threads()` threads: the calling thread takes the first slice, idle workers sleep
instead of spinning, and numpy releases the GIL inside each BLAS call. linear adds its bias to
each slice right after that slice's GEMM, on the same thread, while the slice is in cache.
linear_backward on 2 threads runs its two GEMMs (dx = g W, dW = g^T x: equal flops) side by side,
one whole GEMM per thread, instead of splitting each in turn (half the hand-offs, and each B
matrix packed once). Half
types and 1-d operands return NotImplemented: the reference converts half types to float32 and
handles the vector cases.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...threads import get_num_threads

__all__ = ["matmul", "linear", "linear_backward"]

_MIN_FLOPS_PER_THREAD = 1 << 22  # below ~4 MFLOP a slice costs more to hand out than it saves
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def _threads() -> int:
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


def _slice_product(a, b, bias, out, rows: slice) -> None:
    """out[rows] = a[rows] @ b (+ bias): the bias is added while the slice is still in cache."""
    o = out[..., rows, :]
    np.matmul(a[..., rows, :], b, out=o)
    if bias is not None:
        np.add(o, bias, out=o, casting="unsafe")


def _product(a, b, bias=None):
    """a @ b (+ bias) like the reference kernels, split by output rows when it is worth it."""
    if a.dtype.itemsize == 2 or a.ndim < 2 or b.ndim < 2:
        return NotImplemented
    if b.ndim == 2 and a.ndim > 2 and a.flags["C_CONTIGUOUS"]:  # a batch against a weight: one GEMM
        # (the row count written out: numpy refuses reshape(-1, 0))
        rows = int(np.prod(a.shape[:-1]))
        out = _product(a.reshape(rows, a.shape[-1]), b, bias)
        return out.reshape(a.shape[:-1] + (b.shape[-1],))
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))) if a.ndim + b.ndim > 4 else 1
    parts = min(_threads(), m, max(1, 2 * batch * m * n * k // _MIN_FLOPS_PER_THREAD))
    if parts <= 1:
        out = np.matmul(a, b)
        if bias is not None:
            np.add(out, bias, out=out, casting="unsafe")
        return out
    out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (m, n), dtype=np.result_type(a, b))
    slices = _rows_slices(m, parts)
    pool = _executor(parts - 1)
    futures = [pool.submit(_slice_product, a, b, bias, out, s) for s in slices[1:]]
    _slice_product(a, b, bias, out, slices[0])
    for f in futures:
        f.result()
    return out


def matmul(a, b):
    return _product(a, b)


def linear(x, weight, bias):
    return _product(x, weight.T, bias)


def linear_backward(g, x, weight, need_input: bool, need_weight: bool):
    if g.dtype.itemsize == 2 or g.ndim != 2:
        return NotImplemented
    if not (need_input and need_weight) or _threads() != 2 or g.size * x.shape[1] < _MIN_FLOPS_PER_THREAD:
        return (_product(g, weight) if need_input else None, _product(g.T, x) if need_weight else None)
    weight_grad = _executor(1).submit(np.matmul, g.T, x)
    return np.matmul(g, weight), weight_grad.result()
