"""The cpu backend: adapters from kernel names to tinyml._C, the C++ kernels.

Each adapter makes its inputs what the binding expects (C-contiguous, a supported dtype) and
falls back to the reference kernel for anything else (e.g. float16), so the C++ path never sees
an array it cannot handle. If the extension is missing, tinyml says once how to build it and runs
on the reference kernels.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import add_kernel

try:
    from .. import _C
except ImportError as e:  # pragma: no cover - depends on the install
    _C = None
    warnings.warn(f"tinyml._C (the C++ kernels) is not built ({e}); running on the numpy reference kernels. "
                  "Build it with `pip install -e .` (needs a C++ compiler and pybind11).", RuntimeWarning,
                  stacklevel=2)

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def available() -> bool:
    return _C is not None




def _with_fallback(name: str, native):
    from . import reference  # noqa: F401  (so the reference kernel is registered)
    from . import _KERNELS

    ref = _KERNELS[name]["reference"]

    def kernel(*args, **kwargs):
        out = native(*args, **kwargs)
        return ref(*args, **kwargs) if out is None else out

    kernel.__name__ = name
    kernel.__doc__ = f"C++ {name} (tinyml._C) for float32/float64; the numpy reference otherwise."
    return kernel


def _softmax(fn):
    def native(x, dim):
        if x.dtype not in _NATIVE or dim not in (-1, x.ndim - 1) or x.ndim == 0:
            return None
        return fn(np.ascontiguousarray(x))
    return native


def _softmax_backward(fn):
    def native(y, dy, dim):
        if y.dtype not in _NATIVE or dim not in (-1, y.ndim - 1) or y.ndim == 0:
            return None
        return fn(np.ascontiguousarray(y), np.ascontiguousarray(dy, dtype=y.dtype))
    return native


if _C is not None:
    add_kernel("softmax_forward", "cpu", _with_fallback("softmax_forward", _softmax(_C.softmax_forward)))
    add_kernel("softmax_backward", "cpu", _with_fallback("softmax_backward", _softmax_backward(_C.softmax_backward)))
    add_kernel("log_softmax_forward", "cpu",
               _with_fallback("log_softmax_forward", _softmax(_C.log_softmax_forward)))
    add_kernel("log_softmax_backward", "cpu",
               _with_fallback("log_softmax_backward", _softmax_backward(_C.log_softmax_backward)))
