"""cpu adapters: softmax / log_softmax over the last dim (csrc/softmax.cpp)."""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _forward(fn):
    def native(x, dim):
        if x.dtype not in NATIVE_DTYPES or x.ndim == 0 or dim not in (-1, x.ndim - 1):
            return None
        return fn(np.ascontiguousarray(x))
    return native


def _backward(fn):
    def native(y, dy, dim):
        if y.dtype not in NATIVE_DTYPES or y.ndim == 0 or dim not in (-1, y.ndim - 1):
            return None
        return fn(np.ascontiguousarray(y), np.ascontiguousarray(dy, dtype=y.dtype))
    return native


for _name, _wrap in (("softmax_forward", _forward), ("softmax_backward", _backward),
                     ("log_softmax_forward", _forward), ("log_softmax_backward", _backward)):
    add_kernel(_name, "cpu", with_fallback(_name, _wrap(getattr(_C, _name))))
