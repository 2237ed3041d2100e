"""Thread count for tinyml's CPU work, as torch.set_num_threads:

    tinyml.set_num_threads(2)
    tinyml.get_num_threads()      # -> 2

It sets the OpenMP threads of the C++ kernels (tinyml._C) and the number of slices a large matmul
is split into (backends/cpu/matmul.py). BLAS itself is pinned to one thread while the C++ kernels
are in use (threadpoolctl, a dependency): a BLAS pool of its own would spin against OpenMP's on the
same cores. Without the C++ extension, BLAS gets the `n` threads instead.
"""
from __future__ import annotations

import os

_blas_limiter = None  # the threadpoolctl object holding the current BLAS limit


def _native():
    """tinyml._C, loaded through the cpu backend (which sets up OpenMP's wait policy first)."""
    from .backends.cpu import _C

    return _C


def set_num_threads(n: int) -> None:
    """Use `n` threads in the C++ kernels and in BLAS (numpy's matmul)."""
    global _blas_limiter
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    c = _native()
    if c is not None:
        c.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the install
        os.environ["OMP_NUM_THREADS"] = str(n)  # reaches only libraries loaded after this point
        return
    _blas_limiter = threadpool_limits(limits=1 if c is not None else n, user_api="blas")


def pin_blas_to_one_thread() -> None:
    """Called when the C++ kernels load: from then on tinyml's threads split the matmuls."""
    global _blas_limiter
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the install
        return
    _blas_limiter = threadpool_limits(limits=1, user_api="blas")


def get_num_threads() -> int:
    """The number of threads the C++ kernels use (OpenMP's max threads)."""
    c = _native()
    if c is not None:
        return int(c.get_num_threads())
    return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
