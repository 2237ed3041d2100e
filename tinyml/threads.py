"""Thread count for tinyml's CPU work: the OpenMP threads of the C++ kernels (tinyml._C) and the
BLAS threads numpy's matmuls use, set together.

    tinyml.set_num_threads(2)     # as torch.set_num_threads
    tinyml.get_num_threads()      # -> 2

BLAS libraries read OMP_NUM_THREADS / OPENBLAS_NUM_THREADS only when they load, so changing the
environment after `import numpy` does nothing; threadpoolctl (a dependency) changes the loaded
BLAS's pool at run time. Without it only the C++ kernels follow the setting.
"""
from __future__ import annotations

import os

_blas_limiter = None  # the threadpoolctl object holding the current BLAS limit


def _native():
    try:
        from . import _C
    except ImportError:  # pragma: no cover - extension not built
        return None
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
    _blas_limiter = threadpool_limits(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The number of threads the C++ kernels use (OpenMP's max threads)."""
    c = _native()
    if c is not None:
        return int(c.get_num_threads())
    return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
