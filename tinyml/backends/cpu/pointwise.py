"""cpu adapter: the gradient of maximum / minimum in one loop (csrc/pointwise.cpp).

The numpy reference takes six ufunc calls; the C++ loop does the same float operations in the same
order, so the gradients are the same bits. The binding itself declines (returns NotImplemented, and
the reference runs) what it does not take: anything but three C-contiguous float32 or float64
arrays of one shape and dtype (a Python number for the other operand included).
"""
from . import _C

__all__ = ["minmax_backward"]


# the binding itself, with no Python function around it (a frame per call saved; is_max converts
# to bool in the binding, as bool(is_max) would)
minmax_backward = _C.minmax_backward
