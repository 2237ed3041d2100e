"""cpu adapter: the gradient of maximum / minimum in one loop (csrc/pointwise.cpp).

The numpy reference takes six ufunc calls; the C++ loop does the same float operations in the same
order, so the gradients are the same bits. The binding itself declines (returns NotImplemented, and
the reference runs) what it does not take: anything but three C-contiguous float32 or float64
arrays of one shape and dtype (a Python number for the other operand included).
"""
from . import _C

__all__ = ["minmax_backward"]


def minmax_backward(a, b, g, is_max):
    return _C.minmax_backward(a, b, g, bool(is_max))
