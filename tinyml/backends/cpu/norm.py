"""cpu adapters: layer_norm / rms_norm forward and backward over (rows, N) (csrc/norm.cpp).

Inputs are made C-contiguous; float16/bfloat16 (whose statistics are float32) and mixed dtypes
run the numpy reference.
"""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _native(*arrays) -> bool:
    dt = arrays[0].dtype
    return dt in NATIVE_DTYPES and all(a is None or a.dtype == dt for a in arrays)


def _c(a):
    return a if a is None or a.flags.c_contiguous else np.ascontiguousarray(a)


def _layer_norm_forward(x, weight, bias, eps):
    if not _native(x, weight, bias) or x.ndim == 0:
        return None
    return _C.layer_norm_forward(_c(x), _c(weight), _c(bias), float(eps))


def _layer_norm_backward(dy, x, weight, mean, rstd):
    if not _native(x, dy, weight, mean, rstd) or x.ndim == 0:
        return None
    return _C.layer_norm_backward(_c(dy), _c(x), _c(weight), _c(mean), _c(rstd))


def _rms_norm_forward(x, weight, eps):
    if not _native(x, weight) or x.ndim == 0:
        return None
    return _C.rms_norm_forward(_c(x), _c(weight), float(eps))


def _rms_norm_backward(dy, x, weight, rstd):
    if not _native(x, dy, weight, rstd) or x.ndim == 0:
        return None
    return _C.rms_norm_backward(_c(dy), _c(x), _c(weight), _c(rstd))


for _name, _fn in (("layer_norm_forward", _layer_norm_forward), ("layer_norm_backward", _layer_norm_backward),
                   ("rms_norm_forward", _rms_norm_forward), ("rms_norm_backward", _rms_norm_backward)):
    add_kernel(_name, "cpu", with_fallback(_name, _fn))
