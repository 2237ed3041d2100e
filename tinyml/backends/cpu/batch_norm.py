"""cpu adapters: batch_norm forward and backward over x (N, C, *) (csrc/batch_norm.cpp).

Inputs are made C-contiguous; float16/bfloat16 (whose statistics are float32), mixed dtypes and
running statistics that are not writable contiguous 1-d arrays of x's dtype (the kernel updates
them in place) return NotImplemented: the numpy reference runs.
"""
from . import _C, contiguous, native

__all__ = ["batch_norm_backward", "batch_norm_forward"]


def _updatable(a, x) -> bool:
    return a is None or (a.dtype == x.dtype and a.flags.c_contiguous and a.flags.writeable and a.ndim == 1)


def batch_norm_forward(x, weight, bias, mean, var, eps, running_mean=None, running_var=None, momentum=0.0):
    if not native(x, weight, bias, mean, var) or x.ndim < 2:
        return NotImplemented
    if not _updatable(running_mean, x) or not _updatable(running_var, x):
        return NotImplemented
    return _C.batch_norm_forward(contiguous(x), contiguous(weight), contiguous(bias), contiguous(mean),
                                 contiguous(var), float(eps), running_mean, running_var, float(momentum))


def batch_norm_backward(dy, x, weight, mean, var, eps, training, needs=(True, True, True)):
    if not native(x, dy, weight, mean, var) or x.ndim < 2:
        return NotImplemented
    return _C.batch_norm_backward(contiguous(dy), contiguous(x), contiguous(weight), contiguous(mean),
                                  contiguous(var), float(eps), bool(training), bool(needs[0]), bool(needs[1]),
                                  bool(needs[2]))
