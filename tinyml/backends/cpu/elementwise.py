"""cpu kernels: add, sub, mul and div (csrc/elementwise.cpp), the bindings themselves.

IEEE arithmetic is correctly rounded, so the C++ loops give numpy's bits (the reference,
backends/reference/elementwise.py) while costing less: under half of a ufunc call on a small
array (the per-op overhead of bench/overhead.py), and on a large one tinyml's OpenMP threads instead
of numpy's one (the residual adds of a GPT step, gradient sums in backward). A binding returns
NotImplemented, without touching memory, for what it does not take (anything but float32/float64
arrays of one shape, contiguous or broadcast from a contiguous block, or an array and a Python
float), and the reference runs. Registered as they are, with no Python function around them: an
adapter's frame would cost about as much as the call saves on a small array.
"""
from . import _C

__all__ = ["add", "sub", "mul", "div"]

add = _C.add
sub = _C.sub
mul = _C.mul
div = _C.div
