"""Reference activation kernels (numpy), forward and backward. float16/bfloat16 inputs compute in
float32 and round once at the end; every backward takes the forward input x and the upstream dy.

    gelu "none":  y = x Phi(x) = x/2 (1 + erf(x/sqrt2))          dx = dy (Phi(x) + x phi(x))
    gelu "tanh":  y = x/2 (1 + t), t = tanh(k (x + 0.044715 x^3)), k = sqrt(2/pi)
                  dx = dy (1/2 (1 + t) + x/2 (1 - t^2) k (1 + 3 * 0.044715 x^2))
    silu:         y = x s(x), s = sigmoid                          dx = dy s (1 + x (1 - s))
    swiglu:       y = silu(a) b                                    da = dy b s(a)(1 + a(1 - s(a)))
                                                                   db = dy silu(a)
    softplus:     y = log(1 + e^(beta x)) / beta  (x where beta x > threshold)
                                                                   dx = dy s(beta x)  (dy beyond)
    leaky_relu:   y = x if x > 0 else slope x                      dx = dy (1 if x > 0 else slope)
    elu:          y = x if x > 0 else alpha (e^x - 1)              dx = dy (1 if x > 0 else alpha e^x)
    hardtanh:     y = clamp(x, lo, hi)                             dx = dy [lo < x < hi]
    mish:         y = x t, t = tanh(softplus(x))                   dx = dy (t + x s(x) (1 - t^2))
    glu:          y = a s(b), (a, b) = halves of x along dim       (da, db) = (dy s(b), dy a s(b)(1 - s(b)))
    logsigmoid:   y = min(x, 0) - log1p(e^-|x|)                     dx = dy s(-x)

silu and swiglu use PyTorch's own form, s = 1 / (1 + e^-x) and silu = x / (1 + e^-x), not a stable
sigmoid: where e^-x overflows s is 0 and silu -0, so NaN and inf come out where PyTorch's do
(silu(-inf) = NaN; silu(a) * inf = NaN where silu(a) underflows, not -inf), as in csrc/activation.cpp.
"""
import math

import numpy as np

from ...dtypes import is_half

__all__ = [
    "elu_backward",
    "elu_forward",
    "gelu_backward",
    "gelu_forward",
    "glu_backward",
    "glu_forward",
    "hardtanh_backward",
    "hardtanh_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "logsigmoid_backward",
    "logsigmoid_forward",
    "mish_backward",
    "mish_forward",
    "silu_backward",
    "silu_forward",
    "softplus_backward",
    "softplus_forward",
    "swiglu_backward",
    "swiglu_forward",
]

try:  # scipy's erf is vectorised; math.erf through frompyfunc is exact too, only slower
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - depends on the install
    _erf_obj = np.frompyfunc(math.erf, 1, 1)

    def _erf(x):
        return np.asarray(_erf_obj(x), dtype=x.dtype)

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_KAPPA = 0.044715


def _up(x):
    """x in the dtype the math runs in: float32 for half types, else x's own."""
    return x.astype(np.float32) if is_half(x.dtype) else x


def _sigmoid(x):
    # exp of -|x| never overflows; the two branches are the same function
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _silu(x):
    """x / (1 + e^-x), PyTorch's formula (and the C++ kernel's): -inf / inf = NaN at x = -inf, and -0
    where e^-x overflows, so that silu(a) * inf is NaN there as in PyTorch, not -inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        return x / (1 + np.exp(-x))


def _silu_sigmoid(x):
    """1 / (1 + e^-x), the sigmoid of PyTorch's silu backward: exactly 0 where e^-x overflows."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


def gelu_forward(x, approximate):
    xf = _up(x)
    if approximate == "tanh":
        y = 0.5 * xf * (1 + np.tanh(_SQRT_2_OVER_PI * (xf + _KAPPA * xf ** 3)))
    else:
        y = 0.5 * xf * (1 + _erf(xf * (1 / math.sqrt(2.0))))
    return y.astype(x.dtype, copy=False)


def gelu_backward(x, dy, approximate):
    xf, g = _up(x), _up(dy)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (xf + _KAPPA * xf ** 3))
        d = 0.5 * (1 + t) + 0.5 * xf * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _KAPPA * xf * xf)
    else:
        cdf = 0.5 * (1 + _erf(xf * (1 / math.sqrt(2.0))))
        d = cdf + xf * np.exp(-0.5 * xf * xf) * _INV_SQRT_2PI
    return (g * d).astype(x.dtype, copy=False)


def silu_forward(x):
    return _silu(_up(x)).astype(x.dtype, copy=False)


def silu_backward(x, dy):
    xf = _up(x)
    s = _silu_sigmoid(xf)
    return (_up(dy) * s * (1 + xf * (1 - s))).astype(x.dtype, copy=False)


def swiglu_forward(a, b):
    return (_silu(_up(a)) * _up(b)).astype(a.dtype, copy=False)


def swiglu_backward(a, b, dy):
    af, g = _up(a), _up(dy)
    s = _silu_sigmoid(af)
    da = g * _up(b) * s * (1 + af * (1 - s))
    db = g * _silu(af)
    return da.astype(a.dtype, copy=False), db.astype(b.dtype, copy=False)


def softplus_forward(x, beta, threshold):
    xf = _up(x)
    bx = xf * beta
    with np.errstate(over="ignore"):
        y = np.where(bx > threshold, xf, _softplus(bx) / beta)
    return y.astype(x.dtype, copy=False)


def softplus_backward(x, dy, beta, threshold):
    xf = _up(x)
    bx = xf * beta
    d = np.where(bx > threshold, 1, _sigmoid(bx))
    return (_up(dy) * d).astype(x.dtype, copy=False)


def leaky_relu_forward(x, negative_slope):
    xf = _up(x)
    return np.where(xf > 0, xf, xf * negative_slope).astype(x.dtype, copy=False)


def leaky_relu_backward(x, dy, negative_slope):
    g = _up(dy)
    return np.where(x > 0, g, g * negative_slope).astype(x.dtype, copy=False)


def elu_forward(x, alpha):
    xf = _up(x)
    with np.errstate(over="ignore"):
        return np.where(xf > 0, xf, alpha * np.expm1(np.minimum(xf, 0))).astype(x.dtype, copy=False)


def elu_backward(x, dy, alpha):
    xf, g = _up(x), _up(dy)
    return np.where(xf > 0, g, g * alpha * np.exp(np.minimum(xf, 0))).astype(x.dtype, copy=False)


def hardtanh_forward(x, min_val, max_val):
    return np.clip(x, min_val, max_val).astype(x.dtype, copy=False)


def hardtanh_backward(x, dy, min_val, max_val):
    # PyTorch passes no gradient at the clamp boundaries themselves
    return np.where((x > min_val) & (x < max_val), dy, 0).astype(x.dtype, copy=False)


def mish_forward(x):
    xf = _up(x)
    return (xf * np.tanh(_softplus(xf))).astype(x.dtype, copy=False)


def mish_backward(x, dy):
    xf = _up(x)
    t = np.tanh(_softplus(xf))
    return (_up(dy) * (t + xf * _sigmoid(xf) * (1 - t * t))).astype(x.dtype, copy=False)


def glu_forward(x, dim):
    a, b = np.split(_up(x), 2, axis=dim)
    return (a * _sigmoid(b)).astype(x.dtype, copy=False)


def glu_backward(x, dy, dim):
    a, b = np.split(_up(x), 2, axis=dim)
    g = _up(dy)
    s = _sigmoid(b)
    return np.concatenate([g * s, g * a * s * (1 - s)], axis=dim).astype(x.dtype, copy=False)


def logsigmoid_forward(x):
    xf = _up(x)
    return (np.minimum(xf, 0) - np.log1p(np.exp(-np.abs(xf)))).astype(x.dtype, copy=False)


def logsigmoid_backward(x, dy):
    return (_up(dy) * _sigmoid(-_up(x))).astype(x.dtype, copy=False)
