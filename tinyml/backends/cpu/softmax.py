"""cpu adapters: softmax / log_softmax over the last dim (csrc/softmax.cpp). Another dim, a 0-d
input or a dtype other than float32/float64 returns NotImplemented: the numpy reference runs."""
import numpy as np

from . import _C, NATIVE_DTYPES, contiguous

__all__ = ["softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward"]


def _takes(x, dim) -> bool:
    return x.dtype in NATIVE_DTYPES and x.ndim > 0 and dim in (-1, x.ndim - 1)


def _like(dy, y):
    """dy as a C-contiguous array of y's dtype (a reduced loss's gradient may be a stride-0 view)."""
    return np.ascontiguousarray(dy, dtype=y.dtype)


def softmax_forward(x, dim):
    return _C.softmax_forward(contiguous(x)) if _takes(x, dim) else NotImplemented


def softmax_backward(y, dy, dim):
    return _C.softmax_backward(contiguous(y), _like(dy, y)) if _takes(y, dim) else NotImplemented


def log_softmax_forward(x, dim):
    return _C.log_softmax_forward(contiguous(x)) if _takes(x, dim) else NotImplemented


def log_softmax_backward(y, dy, dim):
    return _C.log_softmax_backward(contiguous(y), _like(dy, y)) if _takes(y, dim) else NotImplemented
