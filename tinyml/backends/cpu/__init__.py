"""The cpu backend: adapters from kernel names to tinyml._C, the C++ kernels.

One adapter module per kernel family (softmax.py, norm.py, ...) beside its C++ file
(csrc/softmax.cpp, ...), listing its kernels in `__all__` like the reference and Triton modules.
An adapter makes its inputs what the binding expects (C-contiguous, float32/float64, with the
helpers below) and returns `NotImplemented` for anything else (e.g. float16), so the dispatcher
runs the reference kernel instead and the C++ code never sees an array it cannot handle. If the
extension is missing, tinyml says once how to build it and runs on the reference kernels.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import warnings

import numpy as np

from .. import register_module

# Our OpenMP runtime waits passively (threads sleep between kernels instead of spinning). The GEMM
# slices now run on the same OpenMP threads (csrc/matmul.cpp), so a short spin was tried instead
# (GOMP_SPINCOUNT 10^4 and 10^5, about 0.1 and 1 ms): with other processes on the 2 cores a baby GPT
# step then took 1.8x and 5.7x the CPU time, the waiting threads spinning on cores another process
# needed (docs/cpu_speed.md, section 5); where numpy's BLAS cannot be called from C++ the slices
# still run on Python threads, which spinning OpenMP threads would starve. libgomp reads the
# variable once, when tinyml._C loads it (so tinyml._C must load through this module); the
# environment is restored at once so that other OpenMP runtimes loaded later (PyTorch's) keep
# their defaults.
_saved_policy = os.environ.get("OMP_WAIT_POLICY")
if _saved_policy is None:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
try:
    from ... import _C
except ImportError as e:  # pragma: no cover - depends on the install
    _C = None
    warnings.warn(f"tinyml._C (the C++ kernels) is not built ({e}); running on the numpy reference kernels. "
                  "Build it with `pip install -e .` (needs a C++ compiler and pybind11).", RuntimeWarning,
                  stacklevel=2)

finally:
    if _saved_policy is None:
        os.environ.pop("OMP_WAIT_POLICY", None)

NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def available() -> bool:
    return _C is not None


def contiguous(a):
    """`a` as a C-contiguous array for a binding (None stays None; a 0-d array stays 0-d)."""
    return a if a is None or a.flags.c_contiguous else np.ascontiguousarray(a)


def native(*arrays) -> bool:
    """Whether the C++ kernels take these arrays: the first is float32 or float64 and every other
    one (None for an absent optional input) has its dtype."""
    dt = arrays[0].dtype
    return dt in NATIVE_DTYPES and all(a is None or a.dtype == dt for a in arrays)


# While a compiled step replays (tinyml/compile.py), one SCHED_IDLE thread per CPU spins where the CPU
# would otherwise idle, so the passive waits above do not let a VM's vCPU halt between parallel regions
# (csrc/keep_awake.cpp; docs/gpt_step_cpu.md "Session 11"). TINYML_KEEP_AWAKE=0 or set_keep_awake(False)
# turns it off.
_keep_awake = os.environ.get("TINYML_KEEP_AWAKE", "1") != "0"
KEEP_AWAKE_MAX_SECONDS = 30.0  # a spin ends this long after its begin even if no end comes


def set_keep_awake(on: bool) -> None:
    """Whether `keep_awake()` spins (tinyml.compile's replays use it). Default: on, unless the
    environment has TINYML_KEEP_AWAKE=0."""
    global _keep_awake
    _keep_awake = bool(on)


def keep_awake_enabled() -> bool:
    return _keep_awake


@contextlib.contextmanager
def keep_awake():
    """Keep this machine's CPUs from halting inside the block: one lowest-priority (SCHED_IDLE) thread
    per CPU spins where nothing else runs, so a wake-up of a sleeping OpenMP thread does not wait for a
    halted vCPU; any other thread takes the CPU from a spinner at once. Only where the OpenMP team
    covers the machine (CPUs <= threads, 2 or more); a no-op elsewhere, without the C++ extension or
    after set_keep_awake(False). Nothing computed changes."""
    spinning = _C is not None and _keep_awake and _C.keep_awake_begin(KEEP_AWAKE_MAX_SECONDS) > 0
    try:
        yield
    finally:
        if spinning:
            _C.keep_awake_end()


if _C is not None:
    from ...threads import pin_blas_to_one_thread

    pin_blas_to_one_thread()
    for _info in pkgutil.iter_modules(__path__):
        register_module(importlib.import_module(f"{__name__}.{_info.name}"), "cpu")
