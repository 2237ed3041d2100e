"""Reference binary and ternary elementwise kernels (numpy).

Binary kernels take two same-shape arrays, or an array and a Python scalar on either side; the
array's dtype is already the result dtype (the op promoted it), and the result keeps it.
numpy computes bfloat16 with a Python scalar in float32, so results are rounded back to the
operands' dtype (`_like`), which is also what PyTorch's CPU kernels do for bfloat16.
"""
import numpy as np

__all__ = ["add", "sub", "mul", "div", "div_trunc", "floor_divide", "remainder", "fmod", "pow", "pow_backward_base",
           "pow_backward_exponent", "eq", "ne", "lt",
           "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and",
           "bitwise_or", "bitwise_xor", "bitwise_not", "where", "minimum", "maximum", "minmax_backward", "clamp",
           "clamp_backward", "masked_fill", "lerp", "addcmul", "addcdiv"]



def _quiet():
    """Silence numpy's warnings: inf and NaN results are the answers, as in PyTorch."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def _like(out, a, b=None):
    """`out` in the dtype of the first array among a, b."""
    dt = a.dtype if isinstance(a, np.ndarray) else b.dtype
    return out if out.dtype == dt else out.astype(dt)


def _is_int(a, b) -> bool:
    dt = a.dtype if isinstance(a, np.ndarray) else b.dtype
    return dt.kind in "iub"


def _check_int_divisor(a, b) -> None:
    # numpy returns 0 (with a warning) for an integer division by zero; PyTorch raises.
    if _is_int(a, b) and np.any(np.asarray(b) == 0):
        raise RuntimeError("ZeroDivisionError: integer division by zero")


def add(a, b):
    return _like(np.add(a, b), a, b)


def sub(a, b):
    return _like(np.subtract(a, b), a, b)


def mul(a, b):
    return _like(np.multiply(a, b), a, b)


def div(a, b):
    """a / b (floating operands)."""
    with _quiet():
        return _like(np.true_divide(a, b), a, b)


def floor_divide(a, b):
    """floor(a / b)."""
    _check_int_divisor(a, b)
    with _quiet():
        return _like(np.floor_divide(a, b), a, b)


def div_trunc(a, b):
    """a / b rounded toward zero (C's integer division)."""
    _check_int_divisor(a, b)
    with _quiet():
        if not _is_int(a, b):
            return _like(np.trunc(np.true_divide(a, b)), a, b)
        q = np.floor_divide(a, b)
        # floor and trunc differ by one where the division is inexact and the signs differ
        fix = (np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0))
        return _like(q + fix, a, b)


def remainder(a, b):
    """a - floor(a / b) b: the sign of the divisor (Python's %)."""
    _check_int_divisor(a, b)
    with _quiet():
        return _like(np.remainder(a, b), a, b)


def fmod(a, b):
    """a - trunc(a / b) b: the sign of the dividend (C's fmod)."""
    _check_int_divisor(a, b)
    with _quiet():
        return _like(np.fmod(a, b), a, b)


def pow(a, b):
    """a ** b. An integer base to a negative integer power is 1/a^|b| truncated: 0 unless |a| == 1."""
    with _quiet():
        if _is_int(a, b) and np.any(np.asarray(b) < 0):
            neg = np.asarray(b) < 0
            out = np.power(a, np.where(neg, 0, b))
            odd = np.remainder(b, 2) != 0
            inv = np.where(np.asarray(a) == 1, 1, np.where(np.asarray(a) == -1, np.where(odd, -1, 1), 0))
            return _like(np.where(neg, inv, out), a, b)
        return _like(np.power(a, b), a, b)


def pow_backward_base(a, b, g):
    """g b a^(b-1), and 0 where b == 0 (even at a == 0, where a^(b-1) is inf), as PyTorch."""
    with _quiet():
        out = np.where(np.asarray(b) == 0, 0, g * b * np.power(a, np.subtract(b, 1)))
    return _like(out, g)


def pow_backward_exponent(a, b, out, g):
    """g a^b ln a, and 0 where a == 0 and b >= 0 (the limit PyTorch takes)."""
    with _quiet():
        grad = np.where((np.asarray(a) == 0) & (np.asarray(b) >= 0), 0, g * out * np.log(a))
    return _like(grad, g)


def eq(a, b):
    return np.equal(a, b)


def ne(a, b):
    return np.not_equal(a, b)


def lt(a, b):
    return np.less(a, b)


def le(a, b):
    return np.less_equal(a, b)


def gt(a, b):
    return np.greater(a, b)


def ge(a, b):
    return np.greater_equal(a, b)


def logical_and(a, b):
    return np.logical_and(a, b)


def logical_or(a, b):
    return np.logical_or(a, b)


def logical_xor(a, b):
    return np.logical_xor(a, b)


def logical_not(x):
    return np.logical_not(x)


def bitwise_and(a, b):
    return _like(np.bitwise_and(a, b), a, b)


def bitwise_or(a, b):
    return _like(np.bitwise_or(a, b), a, b)


def bitwise_xor(a, b):
    return _like(np.bitwise_xor(a, b), a, b)


def bitwise_not(x):
    return np.invert(x)


def where(cond, a, b):
    """cond ? a : b with one of a, b possibly a Python scalar; the dtype is the array operand's."""
    return _like(np.where(cond, a, b), a, b)


def minimum(a, b):
    """Elementwise min; NaN wins (propagates), as in PyTorch."""
    return _like(np.minimum(a, b), a, b)


def maximum(a, b):
    return _like(np.maximum(a, b), a, b)


def minmax_backward(a, b, g, is_max):
    """Gradients of max(a, b) (or min): g to the selected side; ties split g/2 to each."""
    win_a = np.greater(a, b) if is_max else np.less(a, b)
    share = np.where(win_a, 1.0, np.where(np.equal(a, b), 0.5, 0.0)).astype(g.dtype)
    ga = g * share
    return ga, (g - ga).astype(g.dtype, copy=False)


def clamp(x, lo, hi):
    """min(max(x, lo), hi); lo, hi are arrays, scalars or None. NaN in x propagates; lo > hi gives hi."""
    if lo is None and hi is None:
        return x.copy()
    out = x if lo is None else np.maximum(x, lo)
    out = out if hi is None else np.minimum(out, hi)
    return _like(out, x)


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
    with _quiet():
        diff = np.subtract(end, start)
        out = np.where(np.abs(weight) < 0.5, start + weight * diff, end - diff * (1 - np.asarray(weight)))
    return _like(out, start)


def addcmul(x, t1, t2, value):
    """x + value t1 t2, in that order of evaluation (PyTorch's)."""
    return _like(x + value * t1 * t2, x)


def addcdiv(x, t1, t2, value):
    """x + value t1 / t2."""
    with _quiet():
        return _like(x + value * t1 / t2, x)
