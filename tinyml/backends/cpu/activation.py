"""cpu adapters: gelu / silu / swiglu / softplus forward and backward (csrc/activation.cpp).

Inputs are made C-contiguous; a dtype the C++ code does not take (float16, bfloat16), a mix of
dtypes or of shapes returns NotImplemented, and the numpy reference runs instead.
"""
from . import _C, contiguous, native

__all__ = ["gelu_forward", "gelu_backward", "silu_forward", "silu_backward", "swiglu_forward",
           "swiglu_backward", "softplus_forward", "softplus_backward"]


def gelu_forward(x, approximate):
    if not native(x):
        return NotImplemented
    return _C.gelu_forward(contiguous(x), approximate)


def gelu_backward(x, dy, approximate):
    if not (native(x, dy) and x.shape == dy.shape):
        return NotImplemented
    return _C.gelu_backward(contiguous(x), contiguous(dy), approximate)


def silu_forward(x):
    if not native(x):
        return NotImplemented
    return _C.silu_forward(contiguous(x))


def silu_backward(x, dy):
    if not (native(x, dy) and x.shape == dy.shape):
        return NotImplemented
    return _C.silu_backward(contiguous(x), contiguous(dy))


def swiglu_forward(a, b):
    if not (native(a, b) and a.shape == b.shape):
        return NotImplemented
    return _C.swiglu_forward(contiguous(a), contiguous(b))


def swiglu_backward(a, b, dy):
    if not (native(a, b, dy) and a.shape == b.shape == dy.shape):
        return NotImplemented
    return _C.swiglu_backward(contiguous(a), contiguous(b), contiguous(dy))


def softplus_forward(x, beta, threshold):
    if not native(x):
        return NotImplemented
    return _C.softplus_forward(contiguous(x), float(beta), float(threshold))


def softplus_backward(x, dy, beta, threshold):
    if not (native(x, dy) and x.shape == dy.shape):
        return NotImplemented
    return _C.softplus_backward(contiguous(x), contiguous(dy), float(beta), float(threshold))
