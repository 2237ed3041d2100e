"""Reference unary kernels (numpy): one array in, one array out, the input's dtype unless noted.

Float functions (exp, log, sin, ...) receive floating arrays: the op promotes integer inputs to
the default float dtype first. Backward kernels take the saved forward value (y or x) and the
upstream gradient g, and fuse the derivative into one pass where numpy would need two or more.
"""
import math

import numpy as np

__all__ = ["neg", "abs", "abs_backward", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt",
           "sqrt_backward", "rsqrt", "rsqrt_backward", "square", "reciprocal", "reciprocal_backward", "sin",
           "cos", "tan", "tan_backward", "tanh", "tanh_backward", "sigmoid", "sigmoid_backward", "relu",
           "relu_backward", "erf", "erf_backward", "sign", "floor", "ceil", "round", "trunc", "frac", "isnan",
           "isinf", "isfinite", "nan_to_num", "nan_to_num_backward"]

_quiet = np.errstate(divide="ignore", invalid="ignore", over="ignore")


def neg(x):
    return np.negative(x)


def abs(x):
    return np.abs(x)


def abs_backward(x, g):
    """g sign(x): 0 at x == 0, as in PyTorch."""
    return (g * np.sign(x)).astype(g.dtype, copy=False)


def exp(x):
    with _quiet:
        return np.exp(x)


def exp2(x):
    with _quiet:
        return np.exp2(x)


def expm1(x):
    """e^x - 1, accurate near 0."""
    with _quiet:
        return np.expm1(x)


def log(x):
    with _quiet:
        return np.log(x)


def log2(x):
    with _quiet:
        return np.log2(x)


def log10(x):
    with _quiet:
        return np.log10(x)


def log1p(x):
    """ln(1 + x), accurate near 0."""
    with _quiet:
        return np.log1p(x)


def sqrt(x):
    with _quiet:
        return np.sqrt(x)


def sqrt_backward(y, g):
    """g / (2 sqrt(x)) = g / (2 y)"""
    with _quiet:
        return (g / (2 * y)).astype(g.dtype, copy=False)


def rsqrt(x):
    """1 / sqrt(x)"""
    with _quiet:
        return (1 / np.sqrt(x)).astype(x.dtype, copy=False)


def rsqrt_backward(y, g):
    """d x^(-1/2) = -x^(-3/2) / 2 = -y^3 / 2"""
    with _quiet:
        return (-0.5 * g * y * y * y).astype(g.dtype, copy=False)


def square(x):
    with _quiet:
        return np.square(x)


def reciprocal(x):
    with _quiet:
        return np.reciprocal(x)


def reciprocal_backward(y, g):
    """d (1/x) = -1/x^2 = -y^2"""
    with _quiet:
        return (-g * y * y).astype(g.dtype, copy=False)


def sin(x):
    return np.sin(x)


def cos(x):
    return np.cos(x)


def tan(x):
    return np.tan(x)


def tan_backward(y, g):
    """d tan x = 1 + tan^2 x = 1 + y^2"""
    with _quiet:
        return (g * (1 + y * y)).astype(g.dtype, copy=False)


def tanh(x):
    return np.tanh(x)


def tanh_backward(y, g):
    """g (1 - y^2)"""
    return (g * (1 - y * y)).astype(g.dtype, copy=False)


def sigmoid(x):
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(y, g):
    """g y (1 - y)"""
    return (g * y * (1 - y)).astype(g.dtype, copy=False)


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


def sign(x):
    return np.sign(x)


def floor(x):
    return np.floor(x) if x.dtype.kind == "f" or x.dtype.name == "bfloat16" else x.copy()


def ceil(x):
    return np.ceil(x) if x.dtype.kind == "f" or x.dtype.name == "bfloat16" else x.copy()


def trunc(x):
    return np.trunc(x) if x.dtype.kind == "f" or x.dtype.name == "bfloat16" else x.copy()


def round(x, decimals=0):
    """Round half to even, at `decimals` digits after the point (x * 10^d, rint, / 10^d)."""
    if x.dtype.kind in "iub":
        return x.copy()
    if decimals == 0:
        return np.rint(x)
    with _quiet:
        if decimals > 0:
            scale = 10.0 ** decimals
            return (np.rint(x * scale) / scale).astype(x.dtype, copy=False)
        scale = 10.0 ** -decimals
        return (np.rint(x / scale) * scale).astype(x.dtype, copy=False)


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
    return np.nan_to_num(x, copy=True, nan=nan, posinf=posinf, neginf=neginf)


def nan_to_num_backward(x, g):
    """g where x is finite: replaced values are constants."""
    return np.where(np.isfinite(x), g, 0).astype(g.dtype, copy=False)
