"""Special elementwise functions: inverse trigonometric and hyperbolic functions, erfinv, atan2,
hypot, copysign (one kernel of the same name each, in `backends/*/special`), and the compositions
logit, xlogy, deg2rad, rad2deg, logaddexp, logaddexp2, sinc, signbit, heaviside (existing ops, exact and
cheap, no kernel of their own).

Integer and bool inputs promote to the default float dtype, as in PyTorch. Derivatives (y the
output):

    asin: g / sqrt(1 - x^2)     acos: -g / sqrt(1 - x^2)     atan: g / (1 + x^2)
    sinh: g cosh x              cosh: g sinh x
    asinh: g / sqrt(x^2 + 1)    acosh: g / sqrt((x - 1)(x + 1))   atanh: g / (1 - x^2)
    erfinv: g sqrt(pi)/2 e^(y^2)
    atan2(a, b): da = g b / (a^2 + b^2), db = -g a / (a^2 + b^2)
    hypot(a, b): da = g a / y, db = g b / y
    copysign(a, b): da = g y / a (0 where a == 0), db = 0
    xlogy(a, b) = a ln b (0 where a == 0 and b is not NaN): da = xlogy(g, b) (0 where a == 0 and b <= 0),
        db = g a / b
    logit(x) = ln x - ln(1 - x), x clamped to [eps, 1 - eps] when eps is given: g / (x (1 - x))
    logaddexp(a, b) = m + ln(1 + e^(-|a - b|)), m = max(a, b) (a where a == b, +-inf included: a + ln 2):
        da = g e^(a - y), db = g e^(b - y);  logaddexp2 the same in base 2
    sinc(x) = sin(pi x) / (pi x), 1 at 0: g (cos(pi x) - sinc x) / x, 0 at 0

The derivatives are tensor formulas, so they are differentiable again (create_graph).
"""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..autograd import Function
from ..backends import run
from ..tensor import Tensor
from ._broadcast import as_float, complex_unsupported, prepare
from .pointwise import clamp, where
from .unary import exp, isnan, log, log1p, sqrt

__all__ = ["asin", "acos", "atan", "arcsin", "arccos", "arctan", "sinh", "cosh", "asinh", "acosh", "atanh",
           "arcsinh", "arccosh", "arctanh", "erfinv", "atan2", "arctan2", "hypot", "copysign", "xlogy",
           "logit", "deg2rad", "rad2deg", "logaddexp", "logaddexp2", "sinc", "signbit", "heaviside"]


class _Special(Function):
    """y = kernel(x); the derivative `formula(x, y, g)` is made of differentiable tensor ops."""

    kernel = ""

    @classmethod
    def forward(cls, ctx, x):
        y = run(cls.kernel, x)
        ctx.save_for_backward(x, y)
        return y

    @classmethod
    def backward(cls, ctx, g):
        x, y = ctx.saved_tensors
        return cls.formula(x, y, g)


class Asin(_Special):
    kernel = "asin"
    formula = staticmethod(lambda x, y, g: g / sqrt((1 - x) * (1 + x)))


class Acos(_Special):
    kernel = "acos"
    formula = staticmethod(lambda x, y, g: -(g / sqrt((1 - x) * (1 + x))))


class Atan(_Special):
    kernel = "atan"
    formula = staticmethod(lambda x, y, g: g / (x * x + 1))


class Sinh(_Special):
    kernel = "sinh"
    formula = staticmethod(lambda x, y, g: g * Cosh.apply(x))


class Cosh(_Special):
    kernel = "cosh"
    formula = staticmethod(lambda x, y, g: g * Sinh.apply(x))


class Asinh(_Special):
    kernel = "asinh"
    formula = staticmethod(lambda x, y, g: g / sqrt(x * x + 1))


class Acosh(_Special):
    kernel = "acosh"
    formula = staticmethod(lambda x, y, g: g / sqrt((x - 1) * (x + 1)))


class Atanh(_Special):
    kernel = "atanh"
    formula = staticmethod(lambda x, y, g: g / ((1 - x) * (1 + x)))


class Erfinv(_Special):
    kernel = "erfinv"
    formula = staticmethod(lambda x, y, g: g * exp(y * y) * (math.sqrt(math.pi) / 2))


class _SpecialBinary(Function):
    """y = kernel(a, b) on equal shapes; `formula(a, b, y, g)` gives (da, db)."""

    kernel = ""

    @classmethod
    def forward(cls, ctx, a, b):
        y = run(cls.kernel, a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @classmethod
    def backward(cls, ctx, g):
        a, b, y = ctx.saved_tensors
        return cls.formula(a, b, y, g)


class Atan2(_SpecialBinary):
    kernel = "atan2"

    @staticmethod
    def formula(a, b, y, g):
        r2 = a * a + b * b
        return g * b / r2, -(g * a) / r2


class Hypot(_SpecialBinary):
    kernel = "hypot"

    @staticmethod
    def formula(a, b, y, g):
        return g * a / y, g * b / y


class Copysign(_SpecialBinary):
    kernel = "copysign"

    @staticmethod
    def formula(a, b, y, g):
        ratio = where(a == 0, 0.0, y / where(a == 0, 1.0, a))  # +-1, PyTorch's 0 at a == 0
        return g * ratio, g * 0


class Xlogy(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _xlogy_values(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return where((a == 0) & (b <= 0), 0.0, _xlogy_values(g, b)), g * a / b


def _xlogy_values(a: Tensor, b: Tensor) -> Tensor:
    """a ln b, with 0 where a == 0 unless b is NaN (PyTorch's convention)."""
    return a * log(where((a == 0) & ~isnan(b), 1.0, b))  # 0 * ln 1: no 0 * -inf to warn about


def _float_pair(input, other, name: str) -> tuple[Tensor, Tensor]:
    """Both operands as tensors of one floating dtype and one shape (scalars become tensors)."""
    a, b = prepare(input, other, name)
    dt = a.dtype if type(a) is Tensor else b.dtype
    for v in (a, b):
        if type(v) is Tensor and v.dtype.is_complex:
            raise complex_unsupported(name, v.dtype)
    if not dt.is_floating_point:
        dt = _dt.get_default_dtype()
    like = a if type(a) is Tensor else b
    a = a.to(dt) if type(a) is Tensor else like.new_full(like.shape, a, dtype=dt)
    b = b.to(dt) if type(b) is Tensor else like.new_full(like.shape, b, dtype=dt)
    return a, b


def _tensor_pair(input, other, name: str, floats_only: bool = False) -> tuple[Tensor, Tensor]:
    """Two tensors (no numbers); floats_only: integer inputs refused, as PyTorch's hypot and logaddexp."""
    for what, v in (("input", input), ("other", other)):
        if not isinstance(v, Tensor):
            raise TypeError(f"{name}(): argument '{what}' must be Tensor, not {type(v).__name__}")
        if v.dtype.is_complex:
            raise complex_unsupported(name, v.dtype)
    if floats_only and not (input.dtype.is_floating_point or other.dtype.is_floating_point):
        raise RuntimeError(f"{name}: not implemented for integer or bool tensors (got {input.dtype} and "
                           f"{other.dtype}); convert with .float() first")
    return _float_pair(input, other, name)


def asin(input: Tensor) -> Tensor:
    """arcsin x in [-pi/2, pi/2]; NaN outside [-1, 1]."""
    return Asin.apply(as_float(input))


def acos(input: Tensor) -> Tensor:
    """arccos x in [0, pi]; NaN outside [-1, 1]."""
    return Acos.apply(as_float(input))


def atan(input: Tensor) -> Tensor:
    """arctan x in (-pi/2, pi/2)."""
    return Atan.apply(as_float(input))


def sinh(input: Tensor) -> Tensor:
    """(e^x - e^-x) / 2"""
    return Sinh.apply(as_float(input))


def cosh(input: Tensor) -> Tensor:
    """(e^x + e^-x) / 2"""
    return Cosh.apply(as_float(input))


def asinh(input: Tensor) -> Tensor:
    """ln(x + sqrt(x^2 + 1))"""
    return Asinh.apply(as_float(input))


def acosh(input: Tensor) -> Tensor:
    """ln(x + sqrt(x^2 - 1)); NaN below 1."""
    return Acosh.apply(as_float(input))


def atanh(input: Tensor) -> Tensor:
    """ln((1 + x) / (1 - x)) / 2; +-inf at +-1, NaN outside [-1, 1]."""
    return Atanh.apply(as_float(input))


def erfinv(input: Tensor) -> Tensor:
    """The inverse of erf on (-1, 1); +-inf at +-1, NaN outside."""
    return Erfinv.apply(as_float(input))


def atan2(input: Tensor, other: Tensor) -> Tensor:
    """The angle of the point (other, input): arctan(input / other) in the right quadrant, in [-pi, pi]."""
    return Atan2.apply(*_tensor_pair(input, other, "atan2"))


def hypot(input: Tensor, other: Tensor) -> Tensor:
    """sqrt(input^2 + other^2), without overflow in the squares."""
    return Hypot.apply(*_tensor_pair(input, other, "hypot", floats_only=True))


def copysign(input, other) -> Tensor:
    """|input| with the sign (bit) of other; -0.0 counts as negative."""
    return Copysign.apply(*_float_pair(input, other, "copysign"))


def xlogy(input, other) -> Tensor:
    """input * ln(other), 0 where input == 0 (unless other is NaN)."""
    return Xlogy.apply(*_float_pair(input, other, "xlogy"))


def logit(input: Tensor, eps: float | None = None) -> Tensor:
    """ln(x / (1 - x)) = ln x - ln(1 - x), x clamped to [eps, 1 - eps] first when eps is given."""
    x = as_float(input)
    if eps is not None:
        x = clamp(x, eps, 1 - eps)
    return log(x) - log1p(-x)


def deg2rad(input: Tensor) -> Tensor:
    """x pi / 180"""
    return as_float(input) * (math.pi / 180.0)


def rad2deg(input: Tensor) -> Tensor:
    """x 180 / pi"""
    return as_float(input) * (180.0 / math.pi)


class LogAddExp(Function):
    """y = log_base(base^a + base^b); ln_base = 1 for e, ln 2 for base 2."""

    @staticmethod
    def forward(ctx, a, b, ln_base):
        m = where(a > b, a, b)
        d = (a - b).abs() * ln_base
        y = where(a == b, a + math.log(2.0) / ln_base, m + log1p(exp(-d)) / ln_base)
        ctx.save_for_backward(a, b, y)
        ctx.ln_base = ln_base
        return y

    @staticmethod
    def backward(ctx, g):
        a, b, y = ctx.saved_tensors
        k = ctx.ln_base
        return g * exp((a - y) * k), g * exp((b - y) * k), None


class Sinc(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _sinc_values(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        safe = where(x == 0, 1.0, x)
        return where(x == 0, 0.0, g * ((safe * math.pi).cos() - _sinc_values(safe)) / safe)


def _sinc_values(x: Tensor) -> Tensor:
    px = where(x == 0, 1.0, x) * math.pi  # no 0 / 0 to warn about: that point is 1
    return where(x == 0, 1.0, px.sin() / px)


def logaddexp(input: Tensor, other: Tensor) -> Tensor:
    """ln(e^input + e^other), without overflow."""
    return LogAddExp.apply(*_tensor_pair(input, other, "logaddexp", floats_only=True), 1.0)


def logaddexp2(input: Tensor, other: Tensor) -> Tensor:
    """log2(2^input + 2^other), without overflow."""
    return LogAddExp.apply(*_tensor_pair(input, other, "logaddexp2", floats_only=True), math.log(2.0))


def sinc(input: Tensor) -> Tensor:
    """The normalised sinc, sin(pi x) / (pi x), 1 at 0."""
    return Sinc.apply(as_float(input))


def signbit(input: Tensor) -> Tensor:
    """True where the sign bit is set: x < 0, -0.0 and negative NaN (bool; integers: x < 0)."""
    if not input.dtype.is_floating_point:
        return input < 0
    return copysign(input.new_ones(()).expand(input.shape), input.detach()) < 0


def heaviside(input: Tensor, values: Tensor) -> Tensor:
    """0 where input < 0, values where input == 0, 1 where input > 0 (and 0 for NaN, as PyTorch's
    `input == 0 ? values : input > 0`); no gradient."""
    if not isinstance(values, Tensor):
        raise TypeError(f"heaviside(): argument 'values' must be Tensor, not {type(values).__name__}")
    if input.dtype is not values.dtype:
        raise RuntimeError(f"heaviside is not yet implemented for tensors with different dtypes: input "
                           f"{input.dtype}, values {values.dtype}")
    x = input.detach()
    return where(x == 0, values.detach(), (x > 0).to(input.dtype))


arcsin, arccos, arctan, arcsinh, arccosh, arctanh, arctan2 = asin, acos, atan, asinh, acosh, atanh, atan2
