"""cpu adapters: layer_norm / rms_norm forward and backward over (rows, N), and add_layer_norm
(residual add + layer_norm over any leading dims) (csrc/norm.cpp).

Inputs are made C-contiguous; float16/bfloat16 (whose statistics are float32), mixed dtypes and
0-d inputs return NotImplemented: the numpy reference runs.
"""
from . import _C, contiguous, native

__all__ = ["add_layer_norm_backward", "add_layer_norm_forward", "layer_norm_forward", "layer_norm_backward",
           "rms_norm_forward", "rms_norm_backward"]


def layer_norm_forward(x, weight, bias, eps):
    if not native(x, weight, bias) or x.ndim == 0:
        return NotImplemented
    return _C.layer_norm_forward(contiguous(x), contiguous(weight), contiguous(bias), float(eps))


def layer_norm_backward(dy, x, weight, mean, rstd):
    if not native(x, dy, weight, mean, rstd) or x.ndim == 0:
        return NotImplemented
    return _C.layer_norm_backward(contiguous(dy), contiguous(x), contiguous(weight), contiguous(mean),
                                  contiguous(rstd))


def rms_norm_forward(x, weight, eps):
    if not native(x, weight) or x.ndim == 0:
        return NotImplemented
    return _C.rms_norm_forward(contiguous(x), contiguous(weight), float(eps))


def rms_norm_backward(dy, x, weight, rstd):
    if not native(x, dy, weight, rstd) or x.ndim == 0:
        return NotImplemented
    return _C.rms_norm_backward(contiguous(dy), contiguous(x), contiguous(weight), contiguous(rstd))


def add_layer_norm_forward(x, residual, weight, bias, eps):
    if not native(x, residual, weight, bias) or x.ndim == 0 or x.shape != residual.shape:
        return NotImplemented
    return _C.add_layer_norm_forward(contiguous(x), contiguous(residual), contiguous(weight),
                                     contiguous(bias), float(eps))


def add_layer_norm_backward(dy, ds, s, weight, mean, rstd):
    if not native(s, dy, ds, weight, mean, rstd) or s.ndim == 0:
        return NotImplemented
    return _C.add_layer_norm_backward(contiguous(dy), contiguous(ds), contiguous(s), contiguous(weight),
                                      contiguous(mean), contiguous(rstd))
