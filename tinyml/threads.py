"""Thread count for tinyml's CPU work, as torch.set_num_threads:

    tinyml.set_num_threads(2)
    tinyml.get_num_threads()      # -> 2

It sets the OpenMP threads of the C++ kernels (tinyml._C) and the number of slices a large matmul
is split into (backends/cpu/matmul.py). BLAS itself is pinned to one thread while the C++ kernels
are in use (threadpoolctl, a dependency): a BLAS pool of its own would spin against OpenMP's on the
same cores. Without the C++ extension, BLAS gets the `n` threads instead.

`n` is an int from 1 to MAX_THREADS (1024); anything else raises ValueError naming it. Why a
bound: libgomp starts a parallel region by allocating over 100 bytes per thread on the calling
thread's stack and creating every thread at once. With 100000 threads the first kernel overflowed
an 8 MiB stack (a segfault), and with 50000 thread creation failed, which libgomp answers by
exiting the process; neither can be caught. 1024 stays 50x below both and above the core count
of any machine tinyml runs on. (PyTorch raises for n <= 0 and leaves the rest to OpenMP.)
"""
from __future__ import annotations

import os

import numpy as np

_blas_limiter = None  # the threadpoolctl object holding the current BLAS limit
MAX_THREADS = 1024  # the same bound as csrc/module.cpp's kMaxThreads (tinyml._C.MAX_THREADS)


def _native():
    """tinyml._C, loaded through the cpu backend (which sets up OpenMP's wait policy first)."""
    from .backends.cpu import _C

    return _C


def set_num_threads(n: int) -> None:
    """Use `n` threads (1 <= n <= MAX_THREADS) in the C++ kernels and in BLAS (numpy's matmul)."""
    global _blas_limiter
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: expected a positive integer of at most MAX_THREADS = "
                         f"{MAX_THREADS}, got {n!r}")
    n = int(n)
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
