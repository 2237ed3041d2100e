"""cpu adapters: tanh and sigmoid backward, one fused loop each, and sigmoid's tail (csrc/unary.cpp).

numpy needs three ufunc calls for either gradient (g (1 - y^2), g y (1 - y)) and two after exp for
sigmoid (1 / (1 + e)); the C++ loop does the same float operations in the same order, so the result
is the same bits, in one call. The bindings themselves decline (return NotImplemented, and the
numpy reference runs) what they do not take: anything but C-contiguous float32 or float64 arrays
(two of one shape and dtype for the backward kernels). They read the array headers only, which is
cheaper than checking them here.
"""
import numpy as np

from ..reference.elementwise import ONE, quiet, quiet_enter, quiet_exit
from . import _C

__all__ = ["tanh_backward", "sigmoid_backward", "sigmoid"]
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


# the bindings themselves, with no Python function around them (a frame per call saved)
tanh_backward = _C.tanh_backward
sigmoid_backward = _C.sigmoid_backward


def sigmoid(x):
    """1 / (1 + e^-x): numpy's exp (its bits), then 1 / (1 + e) in place in one C++ loop instead of
    numpy's two ufunc calls. float16 and bfloat16 decline (the reference rounds them its own way)."""
    dt = x.dtype
    if dt is not _F32 and dt is not _F64:
        return NotImplemented
    # `with quiet():` at half the cost: e^-x overflows to inf for x << 0, and 1 / inf = 0 is the answer
    # (reference.unary.sigmoid)
    token = quiet_enter()
    try:
        e = np.exp(np.negative(x))
    finally:
        quiet_exit(token)
    out = _C.sigmoid_from_exp_(e)
    if out is NotImplemented:  # a 0-d input gives numpy scalars: finish as the reference does
        one = ONE[dt]
        with quiet():
            out = one / (one + e)
    return out
