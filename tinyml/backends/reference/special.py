"""Reference kernels (numpy) of the special-function family: inverse trigonometric and hyperbolic
functions, erfinv, atan2, hypot and copysign. Float arrays in (the op promotes integers first),
the input's dtype out; NaN and inf give what PyTorch gives (numpy's own special values).

erfinv has no numpy function: Giles' single-precision approximation ("Approximating the erfinv
function", GPU Computing Gems, 2010) refined by two Newton steps on erf in float64, which brings
it to double precision; erfinv(+-1) = +-inf and |x| > 1 gives NaN, as in PyTorch.
"""
import math

import numpy as np

from .unary import erf

__all__ = ["asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "erfinv", "atan2", "hypot",
           "copysign"]


def _quiet():
    """Out-of-domain inputs give NaN and poles inf, as in PyTorch: no numpy warnings for them."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def _wide(x):
    """bfloat16 host arrays compute in float32 (numpy has no bf16 math); other floats as they are."""
    return x.astype(np.float32) if x.dtype.kind == "V" else x


def _unary(np_fn):
    def kernel(x):
        with _quiet():
            return np_fn(_wide(x)).astype(x.dtype, copy=False)

    kernel.__name__ = np_fn.__name__
    return kernel


asin, acos, atan = _unary(np.arcsin), _unary(np.arccos), _unary(np.arctan)
sinh, cosh = _unary(np.sinh), _unary(np.cosh)
asinh, acosh, atanh = _unary(np.arcsinh), _unary(np.arccosh), _unary(np.arctanh)
for _fn, _name in ((asin, "asin"), (acos, "acos"), (atan, "atan"), (asinh, "asinh"), (acosh, "acosh"),
                   (atanh, "atanh")):
    _fn.__name__ = _name

# Giles' coefficients: central region (w < 5) and tails, highest power first.
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                   -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def erfinv(x):
    """y with erf(y) = x: Giles' approximation, then y -= (erf y - x) / (2/sqrt(pi) e^(-y^2)) twice."""
    a = _wide(x).astype(np.float64)
    with _quiet():
        w = -np.log((1.0 - a) * (1.0 + a))
        central = w < 5.0
        t = np.where(central, w - 2.5, np.sqrt(w) - 3.0)
        p = np.zeros_like(a)
        for c_mid, c_tail in zip(_ERFINV_CENTRAL, _ERFINV_TAIL):
            p = p * t + np.where(central, c_mid, c_tail)
        y = p * a
        for _ in range(2):
            y = y - (erf(y) - a) / (2.0 / math.sqrt(math.pi) * np.exp(-y * y))
        y = np.where(np.abs(a) == 1.0, np.copysign(np.inf, a), y)
        y = np.where(np.abs(a) > 1.0, np.nan, y)  # NaN stays NaN through every step above
    return y.astype(x.dtype, copy=False)


def _binary(np_fn, name):
    def kernel(a, b):
        with _quiet():
            return np_fn(_wide(a), _wide(b)).astype(a.dtype, copy=False)

    kernel.__name__ = name
    return kernel


atan2 = _binary(np.arctan2, "atan2")
hypot = _binary(np.hypot, "hypot")
copysign = _binary(np.copysign, "copysign")
