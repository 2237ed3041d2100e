"""Reference unary kernels (numpy): one array in, one array out, the input's dtype unless noted.

Float functions (exp, log, sin, ...) receive floating arrays: the op promotes integer inputs to
the default float dtype first. Backward kernels take the saved forward value (y or x) and the
upstream gradient g, and fuse the derivative into one pass where numpy would need two or more.
"""
import math

import numpy as np

from ...dtypes import finfo
from .elementwise import ONE, quiet_enter, quiet_exit
from .elementwise import quiet as _quiet  # np.errstate(divide, invalid, over = "ignore"), cheaper

__all__ = ["neg", "abs", "abs_backward", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt",
           "sqrt_backward", "rsqrt", "rsqrt_backward", "square", "reciprocal", "reciprocal_backward", "sin",
           "cos", "tan", "tan_backward", "tanh", "tanh_backward", "sigmoid", "sigmoid_backward", "relu",
           "relu_backward", "erf", "erf_backward", "sign", "floor", "ceil", "round", "trunc", "frac", "isnan",
           "isinf", "isfinite", "nan_to_num", "nan_to_num_backward"]


def neg(x):
    return np.negative(x)


def abs(x):
    return np.abs(x)


def abs_backward(x, g):
    """g sign(x): 0 at x == 0, as in PyTorch."""
    return (g * np.sign(x)).astype(g.dtype, copy=False)


def exp(x):
    token = quiet_enter()  # `with _quiet():` at half the cost (exp is a hot kernel)
    try:
        return np.exp(x)
    finally:
        quiet_exit(token)


def exp2(x):
    with _quiet():
        return np.exp2(x)


def expm1(x):
    """e^x - 1, accurate near 0."""
    with _quiet():
        return np.expm1(x)


def log(x):
    with _quiet():
        return np.log(x)


def log2(x):
    with _quiet():
        return np.log2(x)


def log10(x):
    with _quiet():
        return np.log10(x)


def log1p(x):
    """ln(1 + x), accurate near 0."""
    with _quiet():
        return np.log1p(x)


def sqrt(x):
    with _quiet():
        return np.sqrt(x)


def sqrt_backward(y, g):
    """g / (2 sqrt(x)) = g / (2 y)"""
    with _quiet():
        return (g / (2 * y)).astype(g.dtype, copy=False)


def rsqrt(x):
    """1 / sqrt(x)"""
    with _quiet():
        return (1 / np.sqrt(x)).astype(x.dtype, copy=False)


def rsqrt_backward(y, g):
    """d x^(-1/2) = -x^(-3/2) / 2 = -y^3 / 2"""
    with _quiet():
        return (-0.5 * g * y * y * y).astype(g.dtype, copy=False)


def square(x):
    with _quiet():
        return np.square(x)


def reciprocal(x):
    with _quiet():
        return np.reciprocal(x)


def reciprocal_backward(y, g):
    """d (1/x) = -1/x^2 = -y^2"""
    with _quiet():
        return (-g * y * y).astype(g.dtype, copy=False)


def sin(x):
    return np.sin(x)


def cos(x):
    return np.cos(x)


def tan(x):
    return np.tan(x)


def tan_backward(y, g):
    """d tan x = 1 + tan^2 x = 1 + y^2"""
    with _quiet():
        return (g * (1 + y * y)).astype(g.dtype, copy=False)


def tanh(x):
    return np.tanh(x)


def _as(out, dt):
    """out in dtype dt (float32 and float64 results already are: no astype call)."""
    return out if out.dtype is dt else out.astype(dt, copy=False)


def tanh_backward(y, g):
    """g (1 - y^2)"""
    return _as(g * (ONE.get(y.dtype, 1) - y * y), g.dtype)


def sigmoid(x):
    """1 / (1 + e^-x). For x << 0, e^-x overflows to inf and 1 / inf = 0: the right limit, and
    the relative error stays that of one exp and one division elsewhere (PyTorch's formula)."""
    one = ONE.get(x.dtype, 1)
    with _quiet():
        out = one / (one + np.exp(-x))
    return _as(out, x.dtype)


def sigmoid_backward(y, g):
    """g y (1 - y)"""
    return _as(g * y * (ONE.get(y.dtype, 1) - y), g.dtype)


def relu(x):
    return np.maximum(x, 0).astype(x.dtype, copy=False)


def relu_backward(y, g):
    """g where y > 0 (the output is positive exactly where the input is)."""
    return np.where(y > 0, g, 0).astype(g.dtype, copy=False)


def erf(x):
    """2/sqrt(pi) * integral_0^x e^(-t^2) dt, to double precision (scipy when present, else math.erf)."""
    try:
        from scipy.special import erf as _erf
    except ImportError:  # pragma: no cover - scipy is optional
        _erf = np.vectorize(math.erf, otypes=[np.float64])
    return np.asarray(_erf(x.astype(np.float64))).astype(x.dtype, copy=False)


def erf_backward(x, g):
    """d erf x = 2/sqrt(pi) e^(-x^2)"""
    return (g * (2 / math.sqrt(math.pi)) * np.exp(-x * x)).astype(g.dtype, copy=False)


def _real(x, name: str):
    """x, refused when complex: C has no order, so no rounding (and torch.sign refuses it too)."""
    if x.dtype.kind == "c":
        raise TypeError(f"{name}: not supported for complex tensors (got dtype {x.dtype})")
    return x


def sign(x):
    """-1, 0 or 1; NaN gives 0, as torch.sign does."""
    if x.dtype.kind in "iub":
        return x.copy() if x.dtype.kind == "b" else np.sign(x)
    return np.where(np.isnan(x), np.zeros((), x.dtype), np.sign(_real(x, "sign")))


def floor(x):
    return x.copy() if x.dtype.kind in "iub" else np.floor(_real(x, "floor"))


def ceil(x):
    return x.copy() if x.dtype.kind in "iub" else np.ceil(_real(x, "ceil"))


def trunc(x):
    return x.copy() if x.dtype.kind in "iub" else np.trunc(_real(x, "trunc"))


def round(x, decimals=0):
    """Round half to even, at `decimals` digits after the point (x * 10^d, rint, / 10^d)."""
    if x.dtype.kind in "iub":
        return x.copy()
    _real(x, "round")
    if decimals == 0:
        return np.rint(x)
    xf = x.astype(np.float32) if x.dtype.kind == "V" else x  # bfloat16: scale in float32
    with _quiet():
        if decimals > 0:
            scale = 10.0 ** decimals
            return (np.rint(xf * scale) / scale).astype(x.dtype, copy=False)
        scale = 10.0 ** -decimals
        return (np.rint(xf / scale) * scale).astype(x.dtype, copy=False)


def frac(x):
    """x - trunc(x), with x's sign."""
    return (x - np.trunc(x)).astype(x.dtype, copy=False)


def isnan(x):
    return np.isnan(x) if x.dtype.kind not in "iub" else np.zeros(x.shape, np.bool_)


def isinf(x):
    return np.isinf(x) if x.dtype.kind not in "iub" else np.zeros(x.shape, np.bool_)


def isfinite(x):
    return np.isfinite(x) if x.dtype.kind not in "iub" else np.ones(x.shape, np.bool_)


def nan_to_num(x, nan, posinf, neginf):
    """NaN -> nan, +inf -> posinf, -inf -> neginf; None means the dtype's largest/lowest value."""
    if x.dtype.kind in "iub":
        return x.copy()
    info = finfo(x.dtype)  # also knows bfloat16, which np.nan_to_num leaves untouched
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    out = np.where(np.isnan(x), np.asarray(nan, x.dtype), x)
    out = np.where(np.isposinf(out), np.asarray(posinf, x.dtype), out)
    return np.where(np.isneginf(out), np.asarray(neginf, x.dtype), out)


def nan_to_num_backward(x, g):
    """g where x is finite: replaced values are constants."""
    return np.where(np.isfinite(x), g, 0).astype(g.dtype, copy=False)
