"""The cpu backend: adapters from kernel names to tinyml._C, the C++ kernels.

One adapter module per kernel family (softmax.py, norm.py, ...), each registering its kernels
with `add_kernel(name, "cpu", fn)`. An adapter makes its inputs what the binding expects
(C-contiguous, float32/float64) and falls back to the reference kernel for anything else (e.g.
float16), so the C++ code never sees an array it cannot handle. If the extension is missing,
tinyml says once how to build it and runs on the reference kernels.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import warnings

import numpy as np

# Our OpenMP runtime waits passively (threads sleep between kernels instead of spinning): the
# matmul slices run on Python threads between the C++ kernels, and spinning OpenMP threads would
# take their cores. libgomp reads the variable once, when tinyml._C loads it; the environment is
# restored at once so that other OpenMP runtimes loaded later (PyTorch's) keep their defaults.
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


def with_fallback(name: str, native):
    """A kernel that runs `native(*args)`; where that returns None (an input it does not take),
    the reference kernel of the same name runs instead."""
    from .. import _KERNELS
    from .. import reference  # noqa: F401  (registers the reference kernels)

    ref = _KERNELS[name]["reference"]

    def kernel(*args, **kwargs):
        out = native(*args, **kwargs)
        return ref(*args, **kwargs) if out is None else out

    kernel.__name__ = name
    kernel.__doc__ = f"C++ {name} (tinyml._C) for the dtypes it supports; the numpy reference otherwise."
    return kernel


if _C is not None:
    from ...threads import pin_blas_to_one_thread

    pin_blas_to_one_thread()
    for _info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{_info.name}")
