"""Reference elementwise kernels (numpy): arithmetic, comparisons, logical and bitwise ops, the
rounded divisions and remainders, pow and its gradients (the ops in ops/elementwise.py; where,
min/max, clamp and the fused pointwise ops are in pointwise.py).

Binary kernels take two same-shape arrays, or an array and a Python scalar on either side; the
array's dtype is already the result dtype (the op promoted it), and the result keeps it.
numpy computes bfloat16 with a Python scalar in float32, so results are rounded back to the
operands' dtype (`like`), which is also what PyTorch's CPU kernels do for bfloat16.
"""
import numpy as np

try:  # numpy 2: the context variable np.errstate sets, set directly (np.errstate costs ~1 us a block)
    from numpy._core.umath import _extobj_contextvar
except ImportError:  # pragma: no cover - numpy 1.x: np.errstate itself
    _extobj_contextvar = None

__all__ = ["add", "sub", "mul", "div", "div_trunc", "floor_divide", "remainder", "fmod", "pow",
           "pow_backward_base", "pow_backward_exponent", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
           "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
           "bitwise_not"]


class quiet:
    """`with quiet():` silences numpy's divide, invalid and overflow warnings: inf and NaN results
    are the answers, as in PyTorch. It is `np.errstate(divide="ignore", invalid="ignore",
    over="ignore")`, entered at a third of the cost: the error state that block would set, made
    once per state it is entered from, is set on numpy's context variable directly."""

    __slots__ = ("_token", "_errstate")
    _states: dict = {}  # the state entered from -> the quiet state np.errstate makes from it

    def __enter__(self):
        if _extobj_contextvar is None:  # pragma: no cover - numpy 1.x
            self._errstate = np.errstate(divide="ignore", invalid="ignore", over="ignore")
            return self._errstate.__enter__()
        now = _extobj_contextvar.get()
        self._token = _extobj_contextvar.set(self._states.get(now) or _quiet_state(now))

    def __exit__(self, *exc):
        if _extobj_contextvar is None:  # pragma: no cover - numpy 1.x
            return self._errstate.__exit__(*exc)
        _extobj_contextvar.reset(self._token)


def _quiet_state(now):
    """The error state np.errstate(divide, invalid, over = "ignore") makes when entered from `now`."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        state = _extobj_contextvar.get()
    if len(quiet._states) > 64:  # states come from np.seterr calls: a few in any program
        quiet._states.clear()
    quiet._states[now] = state
    return state


if _extobj_contextvar is not None:
    def quiet_enter():
        """`quiet()`'s enter as a plain call, for the hot kernels (exp, sigmoid): returns the token
        to pass to `quiet_exit` (in a `finally`). About half of the with-block's cost: no object,
        no __enter__ / __exit__ frames; quiet_exit is the context variable's own reset."""
        now = _extobj_contextvar.get()
        return _extobj_contextvar.set(quiet._states.get(now) or _quiet_state(now))

    quiet_exit = _extobj_contextvar.reset
else:  # pragma: no cover - numpy 1.x
    def quiet_enter():
        state = np.errstate(divide="ignore", invalid="ignore", over="ignore")
        state.__enter__()
        return state

    def quiet_exit(token) -> None:
        token.__exit__(None, None, None)


def constants(value) -> dict:
    """{dtype: 0-d array of `value`} for float32 and float64. numpy runs a ufunc on an array and a
    0-d array of its dtype on its fast path, and on a Python number through scalar promotion
    (~0.4 us more on a small array); the number becomes the array's dtype either way, so the
    result is the same. Other dtypes (float16, bfloat16: numpy computes bfloat16 with a number in
    float32) keep the Python number: `ONE.get(x.dtype, 1)`."""
    out = {}
    for t in (np.float32, np.float64):
        arr = np.array(value, t)
        arr.flags.writeable = False
        out[arr.dtype] = arr
    return out


ONE, HALF, ZERO = constants(1), constants(0.5), constants(0)
_ndarray = np.ndarray


def like(out, a, b=None):
    """`out` in the dtype of the first array among a, b."""
    dt = a.dtype if type(a) is _ndarray or isinstance(a, _ndarray) else b.dtype
    odt = out.dtype
    return out if odt is dt or odt == dt else out.astype(dt)


def _is_int(a, b) -> bool:
    dt = a.dtype if isinstance(a, np.ndarray) else b.dtype
    return dt.kind in "iub"


def _check_int_divisor(a, b) -> None:
    # numpy returns 0 (with a warning) for an integer division by zero; PyTorch raises.
    if _is_int(a, b) and np.any(np.asarray(b) == 0):
        raise RuntimeError("ZeroDivisionError: integer division by zero")


# add, sub, mul, div: `like` inlined for its common case (an array first, whose dtype numpy kept)
def add(a, b):
    out = np.add(a, b)
    return out if type(a) is _ndarray and out.dtype is a.dtype else like(out, a, b)


def sub(a, b):
    out = np.subtract(a, b)
    return out if type(a) is _ndarray and out.dtype is a.dtype else like(out, a, b)


def mul(a, b):
    out = np.multiply(a, b)
    return out if type(a) is _ndarray and out.dtype is a.dtype else like(out, a, b)


def div(a, b):
    """a / b (floating operands)."""
    with quiet():
        out = np.true_divide(a, b)
    return out if type(a) is _ndarray and out.dtype is a.dtype else like(out, a, b)


def floor_divide(a, b):
    """floor(a / b)."""
    _check_int_divisor(a, b)
    with quiet():
        return like(np.floor_divide(a, b), a, b)


def div_trunc(a, b):
    """a / b rounded toward zero (C's integer division)."""
    _check_int_divisor(a, b)
    with quiet():
        if not _is_int(a, b):
            return like(np.trunc(np.true_divide(a, b)), a, b)
        q = np.floor_divide(a, b)
        # floor and trunc differ by one where the division is inexact and the signs differ
        fix = (np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0))
        return like(q + fix, a, b)


def remainder(a, b):
    """a - floor(a / b) b: the sign of the divisor (Python's %)."""
    _check_int_divisor(a, b)
    with quiet():
        return like(np.remainder(a, b), a, b)


def fmod(a, b):
    """a - trunc(a / b) b: the sign of the dividend (C's fmod)."""
    _check_int_divisor(a, b)
    with quiet():
        return like(np.fmod(a, b), a, b)


def pow(a, b):
    """a ** b. An integer base to a negative integer power is 1/a^|b| truncated: 0 unless |a| == 1."""
    with quiet():
        if _is_int(a, b) and np.any(np.asarray(b) < 0):
            neg = np.asarray(b) < 0
            out = np.power(a, np.where(neg, 0, b))
            odd = np.remainder(b, 2) != 0
            inv = np.where(np.asarray(a) == 1, 1, np.where(np.asarray(a) == -1, np.where(odd, -1, 1), 0))
            return like(np.where(neg, inv, out), a, b)
        return like(np.power(a, b), a, b)


def pow_backward_base(a, b, g):
    """g b a^(b-1), and 0 where b == 0 (even at a == 0, where a^(b-1) is inf), as PyTorch."""
    with quiet():
        out = np.where(np.asarray(b) == 0, 0, g * b * np.power(a, np.subtract(b, 1)))
    return like(out, g)


def pow_backward_exponent(a, b, out, g):
    """g a^b ln a, and 0 where a == 0 and b >= 0 (the limit PyTorch takes)."""
    with quiet():
        grad = np.where((np.asarray(a) == 0) & (np.asarray(b) >= 0), 0, g * out * np.log(a))
    return like(grad, g)


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
    return like(np.bitwise_and(a, b), a, b)


def bitwise_or(a, b):
    return like(np.bitwise_or(a, b), a, b)


def bitwise_xor(a, b):
    return like(np.bitwise_xor(a, b), a, b)


def bitwise_not(x):
    return np.invert(x)
