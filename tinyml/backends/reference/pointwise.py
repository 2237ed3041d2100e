"""Reference selection and fused pointwise kernels (numpy): where, minimum/maximum and their
gradient, clamp and its gradient, masked_fill, lerp, addcmul, addcdiv (the ops in ops/pointwise.py).

Operands are same-shape arrays or Python scalars (the op broadcast them); the result keeps the
array operand's dtype, rounded back from numpy's float32 for bfloat16 as in elementwise.py.
"""
import numpy as np

from .elementwise import HALF, ONE, ZERO, like, quiet

__all__ = ["where", "minimum", "maximum", "minmax_backward", "clamp", "clamp_backward", "masked_fill", "lerp",
           "addcmul", "addcdiv"]


def where(cond, a, b):
    """cond ? a : b with one of a, b possibly a Python scalar; the dtype is the array operand's."""
    return like(np.where(cond, a, b), a, b)


def minimum(a, b):
    """Elementwise min; NaN wins (propagates), as in PyTorch."""
    out = np.minimum(a, b)
    return out if type(a) is np.ndarray and out.dtype is a.dtype else like(out, a, b)  # like, inlined


def maximum(a, b):
    out = np.maximum(a, b)
    return out if type(a) is np.ndarray and out.dtype is a.dtype else like(out, a, b)


def minmax_backward(a, b, g, is_max):
    """Gradients of max(a, b) (or min): g to the selected side; ties split g/2 to each."""
    win_a = np.greater(a, b) if is_max else np.less(a, b)
    dt = g.dtype
    if dt in ONE:  # float32, float64: the shares in g's dtype from the start (exact values: the same)
        share = np.where(win_a, ONE[dt], np.where(np.equal(a, b), HALF[dt], ZERO[dt]))
    else:
        share = np.where(win_a, 1.0, np.where(np.equal(a, b), 0.5, 0.0)).astype(dt)
    ga = g * share
    return ga, (g - ga).astype(g.dtype, copy=False)


def clamp(x, lo, hi):
    """min(max(x, lo), hi); lo, hi are arrays, scalars or None. NaN in x propagates; lo > hi gives hi."""
    if lo is None and hi is None:
        return x.copy()
    out = x if lo is None else np.maximum(x, lo)
    out = out if hi is None else np.minimum(out, hi)
    return like(out, x)


def clamp_backward(x, lo, hi, g):
    """(dx, dlo, dhi): g where lo <= x <= hi to x; where x < lo (and lo < hi) to lo; where x > hi
    (or hi < lo) to hi, PyTorch's split. dlo/dhi are None when lo/hi are not arrays."""
    inside = np.ones(x.shape, np.bool_)
    if lo is not None:
        inside &= np.greater_equal(x, lo)
    if hi is not None:
        inside &= np.less_equal(x, hi)
    zero = np.zeros((), g.dtype)
    dx = np.where(inside, g, zero)
    dlo = dhi = None
    if isinstance(lo, np.ndarray):
        below = np.less(x, lo) if hi is None else np.less(x, lo) & np.less(lo, hi)
        dlo = np.where(below, g, zero)
    if isinstance(hi, np.ndarray):
        above = np.greater(x, hi) if lo is None else np.greater(x, hi) | np.less(hi, lo)
        dhi = np.where(above, g, zero)
    return dx, dlo, dhi


def masked_fill(x, mask, value):
    """x with `value` where mask is true (value: a scalar or a 0-d array)."""
    return np.where(mask, np.asarray(value, dtype=x.dtype), x)


def lerp(start, end, weight):
    """start + weight (end - start), evaluated from the nearer end for weight >= 0.5 (exact at 1)."""
    with quiet():
        diff = np.subtract(end, start)
        out = np.where(np.abs(weight) < 0.5, start + weight * diff, end - diff * (1 - np.asarray(weight)))
    return like(out, start)


def addcmul(x, t1, t2, value):
    """x + value t1 t2, in that order of evaluation (PyTorch's)."""
    return like(x + value * t1 * t2, x)


def addcdiv(x, t1, t2, value):
    """x + value t1 / t2."""
    with quiet():
        return like(x + value * t1 / t2, x)
