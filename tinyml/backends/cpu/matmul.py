"""cpu matmul and linear: numpy's BLAS, one thread per slice, the slices on tinyml's OpenMP threads.

Why not let BLAS thread itself: OpenBLAS keeps its worker threads spinning for a long time after
each GEMM, and the OpenMP threads of the C++ kernels want the same cores right after. Two pools
spinning against each other made a 1 ms GEMM + GELU take 8 ms on 2 cores. So tinyml pins BLAS to
one thread (threadpoolctl) and splits a large product by rows of its output over
`tinyml.get_num_threads()` threads.

The split runs in C++ (csrc/matmul.cpp): each OpenMP thread calls numpy's own OpenBLAS
(`scipy_cblas_sgemm64_` / `scipy_cblas_dgemm64_`, found once with ctypes and handed to the
extension as function pointers) on its rows, with the GIL released for the whole call and no
Python thread in between. linear adds its bias to each slice right after that slice's GEMM, on
the same thread, while the slice is in cache. linear_backward on 2 threads runs its two GEMMs
(dx = g W, dW = g^T x: equal flops) side by side, one whole GEMM per thread. Each slice is the
cblas call numpy's matmul makes for the whole product restricted to its rows, and starts on the
BLAS kernel's tile grid of rows (`row_alignment`, measured once), so the results are numpy's bit for bit.

Where the symbols are missing (a numpy built on MKL or Accelerate, or a BLAS without the ILP64
interface), the same split runs on a Python thread pool over np.matmul (`_threaded_product`).
Products that numpy computes with another BLAS routine (a row or column vector: gemv; a @ a.T:
syrk), and products too small to split, call np.matmul directly. Half types and 1-d operands
return NotImplemented: the reference converts half types to float32 and handles the vector cases.
"""
from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...threads import get_num_threads
from . import _C

__all__ = ["matmul", "linear", "linear_backward"]

_MIN_FLOPS_PER_THREAD = 1 << 22  # below ~4 MFLOP a slice costs more to hand out than it saves; every
# slice keeps that much after moving to the row grid, which also keeps it above OpenBLAS's small-matrix
# bound (M*N*K <= 10^6: another kernel, other bits) whenever the whole product is above it
# (cblas gemm symbol, get_config symbol) of the ILP64 OpenBLAS builds numpy ships (numpy >= 2.0 wheels)
_GEMM_SYMBOLS = {"sgemm": "scipy_cblas_sgemm64_", "dgemm": "scipy_cblas_dgemm64_"}
_CONFIG_SYMBOL = "scipy_openblas_get_config64_"
_native: frozenset = frozenset()  # the dtypes whose GEMMs run in C++
_ALIGN_CANDIDATES = (8, 16, 24, 32, 48, 64)  # row tiles of OpenBLAS's x86 sgemm/dgemm kernels and multiples
_row_align: dict = {}  # dtype -> the row grid where slices keep numpy's bits (row_alignment); 0: never split
blas_status = "not loaded"  # how the GEMMs run (load_blas sets it): for bug reports and tests


def _openblas_paths() -> list[str]:
    """The OpenBLAS libraries loaded in this process, numpy's own first."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - depends on the install
        return []
    paths = [p["filepath"] for p in threadpool_info() if p.get("internal_api") == "openblas"]
    return sorted(paths, key=lambda p: "numpy" not in p)


def _gemm_addresses() -> tuple[int, int, str]:
    """(sgemm, dgemm, where): addresses of the ILP64 cblas GEMMs, 0 for one not found."""
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
            config = getattr(lib, _CONFIG_SYMBOL)
        except (OSError, AttributeError):
            continue
        config.restype = ctypes.c_char_p
        if b"USE64BITINT" not in (config() or b""):  # the signature takes 64-bit ints: check the build
            continue
        addr = [ctypes.cast(getattr(lib, _GEMM_SYMBOLS[k]), ctypes.c_void_p).value
                if hasattr(lib, _GEMM_SYMBOLS[k]) else 0 for k in ("sgemm", "dgemm")]
        if any(addr):
            return addr[0] or 0, addr[1] or 0, path
    return 0, 0, ""


def _slices_keep_bits(dt, align: int, rng) -> bool:
    """Whether np.matmul of row slices starting at multiples of `align` gives the rows of the whole
    product bit for bit, on a plain and a transposed left operand, with row, column and k tails."""
    m = 5 * align + 3
    # a small product (OpenBLAS's small-matrix kernels, M*N*K <= 10^6, on both sides) and a large one whose
    # every slice stays above that bound (k = 520: past OpenBLAS's k blocking; n = 257: a column tail)
    for k, n, transposed in ((40, 24, False), (520, 257, True)):
        a = rng.standard_normal((k, m) if transposed else (m, k)).astype(dt)
        a = a.T if transposed else a
        b = rng.standard_normal((k, n)).astype(dt)
        whole = np.matmul(a, b)
        for r0, r1 in ((0, align), (align, 3 * align), (3 * align, m)):
            if not np.array_equal(np.matmul(a[r0:r1], b), whole[r0:r1]):
                return False
    return True


def row_alignment(dt) -> int:
    """The grid of rows on which a slice of a product gets the whole product's bits from numpy's BLAS,
    measured (0 when no candidate holds: products are then never split).

    A BLAS kernel computes its output in register tiles of rows, and may sum the rows of a tail tile
    in another order than a whole tile's: OpenBLAS 0.3.31's SkylakeX sgemm keeps the bits of any slice
    that starts on a multiple of 8 rows, its Haswell sgemm only on multiples of 24 (its tile), and
    which kernel runs depends on the CPU and on OPENBLAS_CORETYPE. So the grid is measured here, with
    BLAS on one thread as tinyml runs it, rather than assumed."""
    rng = np.random.default_rng(0)
    return next((align for align in _ALIGN_CANDIDATES if _slices_keep_bits(np.dtype(dt), align, rng)), 0)


def load_blas() -> str:
    """Find numpy's BLAS GEMMs and hand them to the C++ kernels; check each on a small product
    against np.matmul. Returns (and keeps in `blas_status`) what happened."""
    global _native, blas_status
    _native = frozenset()
    _row_align.update({dt: row_alignment(dt) for dt in (np.dtype(np.float32), np.dtype(np.float64))})
    if not hasattr(_C, "matmul_set_blas"):  # pragma: no cover - an extension built before csrc/matmul.cpp
        blas_status = "Python thread slices over np.matmul (tinyml._C has no matmul kernels: rebuild it)"
        return blas_status
    sgemm, dgemm, path = _gemm_addresses()
    _C.matmul_set_blas(sgemm, dgemm)
    found = set()
    rng = np.random.default_rng(0)
    for dt, addr in ((np.dtype(np.float32), sgemm), (np.dtype(np.float64), dgemm)):
        if not addr:
            continue
        a, b = rng.standard_normal((5, 3)).astype(dt), rng.standard_normal((4, 3)).astype(dt)
        out = np.empty((5, 4), dt)
        _C.matmul(a, b.T, out, None, 1e30, 0)  # one call on this thread: the check wakes no other
        if np.allclose(out, a @ b.T, rtol=1e-5 if dt == np.float32 else 1e-12):
            found.add(dt)
    if len(found) < 2:  # a mismatch or a missing symbol: that dtype stays on np.matmul
        _C.matmul_set_blas(sgemm if np.dtype(np.float32) in found else 0,
                           dgemm if np.dtype(np.float64) in found else 0)
    _native = frozenset(found)
    names = ", ".join(f"{d.name}, rows split on multiples of {_row_align[d]}" if _row_align[d] else
                      f"{d.name}, not split" for d in sorted(found, key=str)) or "none"
    blas_status = (f"C++ slices over {path} ({names})" if found else
                   "Python thread slices over np.matmul (no ILP64 OpenBLAS cblas GEMM found)")
    return blas_status


def _threads() -> int:
    return get_num_threads()


def _blasable(x) -> bool:
    """Whether BLAS reads the matrices of x (..., r, c) in place: one unit stride, the other at
    least the row length, aligned (numpy's test before it calls gemm)."""
    r, c = x.shape[-2:]
    sr, sc = x.strides[-2:]
    item = x.itemsize
    if not x.flags.aligned or sr % item or sc % item:
        return False
    return ((sc == item and (r <= 1 or sr >= max(c, 1) * item)) or
            (sr == item and (c <= 1 or sc >= max(r, 1) * item)))


def _address(x) -> int:
    return x.__array_interface__["data"][0]


def _product(a, b, bias=None):
    """a @ b (+ bias) like the reference kernels, split by output rows when it is worth it."""
    dt = a.dtype
    if dt.itemsize == 2 or a.ndim < 2 or b.ndim < 2:
        return NotImplemented
    if b.ndim == 2 and a.ndim > 2:  # a batch against a weight: one GEMM, as the reference does
        # (the row count written out: numpy refuses reshape(-1, 0); a copy where a's layout needs one)
        rows = int(np.prod(a.shape[:-1]))
        out = _product(a.reshape(rows, a.shape[-1]), b, bias)
        return out.reshape(a.shape[:-1] + (b.shape[-1],))
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    two_d = a.ndim + b.ndim == 4
    batch_shape = () if two_d else np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    flops = 2 * (1 if two_d else int(np.prod(batch_shape))) * m * n * k
    if (flops < 2 * _MIN_FLOPS_PER_THREAD or min(m, n) <= 1  # one slice, or numpy's gemv
            or _address(a) == _address(b)):  # numpy's syrk (a @ a.T): its bits come from one call
        out = np.matmul(a, b)
        if bias is not None:
            np.add(out, bias, out=out, casting="unsafe")
        return out
    if dt not in _native or b.dtype != dt or (bias is not None and (bias.dtype != dt or bias.ndim != 1)):
        return _threaded_product(a, b, bias, batch_shape, flops)  # no C++ GEMM
    if not _blasable(a):
        a = np.ascontiguousarray(a)
    if not _blasable(b):
        b = np.ascontiguousarray(b)
    if not two_d:  # one batch shape for both (stride 0 along broadcast dims: nothing is copied)
        a = np.broadcast_to(a, batch_shape + a.shape[-2:])
        b = np.broadcast_to(b, batch_shape + b.shape[-2:])
    out = np.empty(batch_shape + (m, n), dtype=dt)
    _C.matmul(a, b, out, None if bias is None else np.ascontiguousarray(bias), _MIN_FLOPS_PER_THREAD,
              _row_align.get(dt, 0))
    return out


def matmul(a, b):
    return _product(a, b)


def linear(x, weight, bias):
    return _product(x, weight.T, bias)


def _bias_grad(g):
    """The reference's db: numpy's axis-0 sum (rows added in order for a C-contiguous g)."""
    return np.sum(g, axis=0, dtype=g.dtype)


def linear_backward(g, x, weight, need_input: bool, need_weight: bool, need_bias: bool = False):
    """dx = g W, dW = g^T x, db = the column sums of g. The C++ kernel sums db on the thread of dW,
    in numpy's order: only for a C-contiguous g, where numpy adds the rows one after another."""
    if g.dtype.itemsize == 2 or g.ndim != 2:
        return NotImplemented
    if not (need_input or need_weight):
        return None, None, (_bias_grad(g) if need_bias else None)
    dt = g.dtype
    m, n = g.shape
    k = (weight if need_input else x).shape[1]
    flops = 2 * m * n * k * (int(need_input) + int(need_weight))
    if (dt not in _native or min(m, n, k) <= 1 or flops < 2 * _MIN_FLOPS_PER_THREAD
            or (need_input and (weight.dtype != dt or _address(weight) == _address(g)))
            or (need_weight and (x.dtype != dt or _address(x) == _address(g)))):
        return (*_threaded_linear_backward(g, x, weight, need_input, need_weight),
                _bias_grad(g) if need_bias else None)
    # db in C++ for a C-contiguous g (numpy adds its rows in order); numpy's own sum otherwise
    fused_bias = need_bias and g.flags.c_contiguous
    db = np.empty(n, dt) if fused_bias else (_bias_grad(g) if need_bias else None)
    g = g if _blasable(g) else np.ascontiguousarray(g)
    if need_input and not _blasable(weight):
        weight = np.ascontiguousarray(weight)
    if need_weight and not _blasable(x):
        x = np.ascontiguousarray(x)
    dx = np.empty((m, k), dt) if need_input else None
    dw = np.empty((n, k), dt) if need_weight else None
    _C.linear_backward(g, x if need_weight else None, weight if need_input else None, dx, dw,
                       db if fused_bias else None, _threads() == 2, _MIN_FLOPS_PER_THREAD,
                       _row_align.get(dt, 0))
    return dx, dw, db


# -- the same split on Python threads, where numpy's BLAS cannot be reached from C++ ---------------
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinyml-blas")
            _pool_size = workers
        return _pool


def _rows_slices(m: int, parts: int, align: int, min_rows: int = 1) -> list[slice]:
    """Up to `parts` slices of m rows, each starting on a multiple of `align` and at least `min_rows`
    long (fewer slices where the grid leaves one shorter), as csrc/matmul_blas.h's slices_for."""
    while True:
        starts = [0] + [m * p // parts // align * align for p in range(1, parts)] + [m]
        if parts == 1 or min(r1 - r0 for r0, r1 in zip(starts, starts[1:])) >= min_rows:
            return [slice(r0, r1) for r0, r1 in zip(starts, starts[1:])]
        parts -= 1


def _slice_product(a, b, bias, out, rows: slice) -> None:
    """out[rows] = a[rows] @ b (+ bias): the bias is added while the slice is still in cache."""
    o = out[..., rows, :]
    np.matmul(a[..., rows, :], b, out=o)
    if bias is not None:
        np.add(o, bias, out=o, casting="unsafe")


def _threaded_product(a, b, bias, batch_shape, flops: int):
    """a @ b (+ bias) split by output rows over a Python thread pool (numpy releases the GIL)."""
    m, n = a.shape[-2], b.shape[-1]
    align = _row_align.get(np.result_type(a, b), 0)
    parts = min(_threads(), m, max(1, flops // _MIN_FLOPS_PER_THREAD)) if align else 1
    slices = _rows_slices(m, parts, align, -(-_MIN_FLOPS_PER_THREAD * m // flops)) if parts > 1 else []
    if len(slices) <= 1 or _address(a) == _address(b):
        out = np.matmul(a, b)
        if bias is not None:
            np.add(out, bias, out=out, casting="unsafe")
        return out
    out = np.empty(tuple(batch_shape) + (m, n), dtype=np.result_type(a, b))
    parts = len(slices)
    pool = _executor(parts - 1)
    futures = [pool.submit(_slice_product, a, b, bias, out, s) for s in slices[1:]]
    _slice_product(a, b, bias, out, slices[0])
    for f in futures:
        f.result()
    return out


def _threaded_linear_backward(g, x, weight, need_input: bool, need_weight: bool):
    if not (need_input and need_weight) or _threads() != 2 or g.size * x.shape[1] < _MIN_FLOPS_PER_THREAD:
        return (_product_numpy(g, weight) if need_input else None,
                _product_numpy(g.T, x) if need_weight else None)
    weight_grad = _executor(1).submit(np.matmul, g.T, x)
    return np.matmul(g, weight), weight_grad.result()


def _product_numpy(a, b):
    """a @ b on the Python-thread path (the C++ GEMMs are bypassed, as for a missing BLAS)."""
    two_d = a.ndim + b.ndim == 4
    batch_shape = () if two_d else np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    flops = 2 * (1 if two_d else int(np.prod(batch_shape))) * a.shape[-2] * a.shape[-1] * b.shape[-1]
    return _threaded_product(a, b, None, batch_shape, flops)


if _C is not None:
    load_blas()
