"""cpu adapters: gelu / silu / swiglu / softplus forward and backward (csrc/activation.cpp).

Inputs are made C-contiguous; a dtype the C++ code does not take (float16, bfloat16), or a mix
of dtypes, runs the numpy reference instead.
"""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _native(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in NATIVE_DTYPES and all(a.dtype == dt for a in arrays)


def _c(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _gelu_forward(x, approximate):
    return _C.gelu_forward(_c(x), approximate) if _native(x) else None


def _gelu_backward(x, dy, approximate):
    return _C.gelu_backward(_c(x), _c(dy), approximate) if _native(x, dy) and x.shape == dy.shape else None


def _silu_forward(x):
    return _C.silu_forward(_c(x)) if _native(x) else None


def _silu_backward(x, dy):
    return _C.silu_backward(_c(x), _c(dy)) if _native(x, dy) and x.shape == dy.shape else None


def _swiglu_forward(a, b):
    return _C.swiglu_forward(_c(a), _c(b)) if _native(a, b) and a.shape == b.shape else None


def _swiglu_backward(a, b, dy):
    if not (_native(a, b, dy) and a.shape == b.shape == dy.shape):
        return None
    return _C.swiglu_backward(_c(a), _c(b), _c(dy))


def _softplus_forward(x, beta, threshold):
    return _C.softplus_forward(_c(x), float(beta), float(threshold)) if _native(x) else None


def _softplus_backward(x, dy, beta, threshold):
    if not (_native(x, dy) and x.shape == dy.shape):
        return None
    return _C.softplus_backward(_c(x), _c(dy), float(beta), float(threshold))


for _name, _fn in (("gelu_forward", _gelu_forward), ("gelu_backward", _gelu_backward),
                   ("silu_forward", _silu_forward), ("silu_backward", _silu_backward),
                   ("swiglu_forward", _swiglu_forward), ("swiglu_backward", _swiglu_backward),
                   ("softplus_forward", _softplus_forward), ("softplus_backward", _softplus_backward)):
    add_kernel(_name, "cpu", with_fallback(_name, _fn))
