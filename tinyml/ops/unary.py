"""Unary elementwise ops: one kernel of the same name each, in `backends/*/unary`.

Float functions (exp, log, sqrt, sin, sigmoid, erf, ...) promote integer and bool inputs to the
default float dtype, as PyTorch does; abs, neg, sign, square, relu and the rounding ops keep integer
dtypes; complex inputs reach abs, neg and the holomorphic ones (not erf, relu, sign, rounding).

    exp: g y       exp2: g y ln2        expm1: g (y + 1)      log: g / x      log1p: g / (1 + x)
    log2: g / (x ln2)   log10: g / (x ln10)   sqrt: g / (2y)   rsqrt: -g y^3 / 2   reciprocal: -g y^2
    sin: g cos x   cos: -g sin x   tan: g (1 + y^2)   tanh: g (1 - y^2)   sigmoid: g y (1 - y)
    relu: g [x > 0]   erf: g 2/sqrt(pi) e^(-x^2)   abs: g sign(x)   square: 2 g x   neg: -g
    frac: g   nan_to_num: g [x finite]   sign, floor, ceil, round, trunc: 0 (piecewise constant)

are the derivatives (y is the output). One gradient source per op (docs/internals.md, section 7):
the fused `grad_kernel` (tanh_backward, ...) where there is one, else (and under create_graph=True)
the differentiable tensor ops of `formula`.
"""
from __future__ import annotations

import math

from .. import autograd as _ag
from .. import dtypes as _dt
from .._apply_exact import apply1
from .._saved_output import saved_one, saved_output
from ..autograd import Function, is_grad_enabled
from ..backends import run, run1, run2
from ..tensor import Tensor
from . import _complex_grad as cx
from ._broadcast import as_float, times

__all__ = ["neg", "negative", "abs", "absolute", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
           "sqrt", "rsqrt", "square", "reciprocal", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "erf",
           "sign", "floor", "ceil", "round", "trunc", "fix", "frac", "isnan", "isinf", "isfinite",
           "nan_to_num"]


class _Unary(Function):
    """y = kernel(x), derivative a function of (saved, g), saved = y if `on_output` else x:
    `grad_kernel(saved, g)` where it exists, else (and under create_graph) `formula(saved, g)`."""

    kernel = grad_kernel = ""
    on_output = True

    @classmethod
    def forward(cls, ctx, x):
        y = cx.unary_forward(ctx, cls, x) if x.dtype.is_complex else run1(cls.kernel, x)
        if ctx.needs_input_grad[0]:  # recorded: save_for_backward's entry, y by value as apply would make it
            ctx._saved = ((saved_output(y, 0), y._version[0]),) if cls.on_output else ((x, x._version[0]),)
        return y

    @classmethod
    def backward(cls, ctx, g):
        saved = saved_one(ctx)  # ctx.saved_tensors[0]
        if not cls.grad_kernel or _ag._grad_enabled:  # no kernel, or create_graph: the tensor formula
            return cls.formula(saved, g)
        return run2(cls.grad_kernel, saved, g)


class Tanh(_Unary):
    kernel, grad_kernel = "tanh", "tanh_backward"

    @staticmethod
    def formula(y, g):
        return g * (1 - y * y)


class Sigmoid(_Unary):
    kernel, grad_kernel = "sigmoid", "sigmoid_backward"

    @staticmethod
    def formula(y, g):
        return g * y * (1 - y)


class Relu(_Unary):
    kernel, grad_kernel = "relu", "relu_backward"

    @staticmethod
    def formula(y, g):
        return g * (y > 0)


class Sqrt(_Unary):
    kernel, grad_kernel = "sqrt", "sqrt_backward"

    @staticmethod
    def formula(y, g):
        return g / (y * 2)


class Rsqrt(_Unary):
    kernel, grad_kernel = "rsqrt", "rsqrt_backward"

    @staticmethod
    def formula(y, g):
        return g * y * y * y * -0.5


class Reciprocal(_Unary):
    kernel, grad_kernel = "reciprocal", "reciprocal_backward"

    @staticmethod
    def formula(y, g):
        return -(g * y * y)


class Tan(_Unary):
    kernel, grad_kernel = "tan", "tan_backward"

    @staticmethod
    def formula(y, g):
        return g * (1 + y * y)


class Erf(_Unary):
    kernel, grad_kernel, on_output = "erf", "erf_backward", False

    @staticmethod
    def formula(x, g):
        return g * exp(-(x * x)) * (2 / math.sqrt(math.pi))


class Abs(_Unary):
    kernel, grad_kernel, on_output = "abs", "abs_backward", False

    @staticmethod
    def formula(x, g):
        return g * sign(x)


class NanToNum(Function):
    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        ctx.save_for_backward(x)
        return run("nan_to_num", x, nan, posinf, neginf)

    @staticmethod
    def backward(ctx, g):
        x = ctx.saved_tensors[0]
        return (g * isfinite(x) if is_grad_enabled() else run("nan_to_num_backward", x, g)), None, None, None


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return cx.join_graph(ctx, out) if (out := run1("neg", x)).dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(_Unary):
    kernel = "exp"
    formula = staticmethod(lambda y, g: times(g, y))  # g * y: the mul kernel itself when grad is off
    backward = staticmethod(lambda ctx, g: times(g, saved_one(ctx)))  # the formula, one frame less


class Exp2(_Unary):
    kernel = "exp2"

    @staticmethod
    def formula(y, g):
        return g * y * math.log(2.0)


class Expm1(_Unary):
    kernel = "expm1"

    @staticmethod
    def formula(y, g):
        return g * (y + 1)


class Log(Function):
    """y = ln(x) / ln(base) (base e for log); dx = g / (x ln base). `kernel` picks the base."""

    @staticmethod
    def forward(ctx, x, kernel, ln_base):
        ctx.save_for_backward(x)
        ctx.ln_base = ln_base
        return cx.join_graph(ctx, y, cx.holomorphic(Log)) if (y := run(kernel, x)).dtype.is_complex else y

    @staticmethod
    def backward(ctx, g):
        x = ctx.saved_tensors[0]
        return (g / x if ctx.ln_base == 1.0 else g / (x * ctx.ln_base)), None, None


class Log1p(_Unary):
    kernel, on_output = "log1p", False

    @staticmethod
    def formula(x, g):
        return g / (x + 1)


class Square(_Unary):
    kernel, on_output = "square", False

    @staticmethod
    def formula(x, g):
        return g * x * 2


class Sin(_Unary):
    kernel, on_output = "sin", False

    @staticmethod
    def formula(x, g):
        return g * cos(x)


class Cos(_Unary):
    kernel, on_output = "cos", False

    @staticmethod
    def formula(x, g):
        return -(g * sin(x))


class Frac(Function):
    @staticmethod
    def forward(ctx, x):
        return run("frac", x)

    @staticmethod
    def backward(ctx, g):
        return g


class PiecewiseConstant(Function):
    """sign, floor, ceil, round, trunc: flat almost everywhere, so the gradient is 0."""

    @staticmethod
    def forward(ctx, x, kernel, *args):
        ctx.n_args = len(args)
        return run(kernel, x, *args)

    @staticmethod
    def backward(ctx, g):
        return (g * 0, None) + (None,) * ctx.n_args


def _no_bool(x: Tensor, name: str) -> None:
    if x.dtype is _dt.bool_:
        raise NotImplementedError(f"{name}: not implemented for bool tensors; convert with .int() or "
                                  f".float() first")


def neg(input: Tensor) -> Tensor:
    """-x"""
    if input.dtype is _dt.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")
    return apply1(Neg, input)


def abs(input: Tensor) -> Tensor:
    """|x|"""
    _no_bool(input, "abs")
    return Abs.apply(input)


def exp(input: Tensor) -> Tensor:
    """e^x"""
    return apply1(Exp, input if input.dtype.is_differentiable else as_float(input, complex_ok=True))


def exp2(input: Tensor) -> Tensor:
    """2^x"""
    return Exp2.apply(as_float(input, complex_ok=True))


def expm1(input: Tensor) -> Tensor:
    """e^x - 1"""
    return Expm1.apply(as_float(input, complex_ok=True))


def log(input: Tensor) -> Tensor:
    """ln x (NaN for x < 0, -inf at 0)"""
    return Log.apply(input if input.dtype.is_differentiable else as_float(input, complex_ok=True), "log", 1.0)


def log2(input: Tensor) -> Tensor:
    return Log.apply(as_float(input, complex_ok=True), "log2", math.log(2.0))


def log10(input: Tensor) -> Tensor:
    return Log.apply(as_float(input, complex_ok=True), "log10", math.log(10.0))


def log1p(input: Tensor) -> Tensor:
    """ln(1 + x)"""
    return Log1p.apply(as_float(input, complex_ok=True))


def sqrt(input: Tensor) -> Tensor:
    return apply1(Sqrt, input if input.dtype.is_differentiable else as_float(input, complex_ok=True))


def rsqrt(input: Tensor) -> Tensor:
    """1 / sqrt(x)"""
    return Rsqrt.apply(as_float(input, complex_ok=True))


def square(input: Tensor) -> Tensor:
    """x^2; bool squares to int64, as in PyTorch."""
    return Square.apply(input.to(_dt.int64) if input.dtype is _dt.bool_ else input)


def reciprocal(input: Tensor) -> Tensor:
    """1 / x"""
    return Reciprocal.apply(as_float(input, complex_ok=True))


def sin(input: Tensor) -> Tensor:
    return Sin.apply(as_float(input, complex_ok=True))


def cos(input: Tensor) -> Tensor:
    return Cos.apply(as_float(input, complex_ok=True))


def tan(input: Tensor) -> Tensor:
    return Tan.apply(as_float(input, complex_ok=True))


def tanh(input: Tensor) -> Tensor:
    return apply1(Tanh, input if input.dtype.is_differentiable else as_float(input, complex_ok=True))


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + e^-x)"""
    return apply1(Sigmoid, input if input.dtype.is_differentiable else as_float(input, complex_ok=True))


def relu(input: Tensor) -> Tensor:
    """max(x, 0); integer tensors stay integer."""
    if input.dtype is _dt.bool_:
        raise RuntimeError("relu: Boolean inputs not supported for relu")
    return apply1(Relu, input)


def erf(input: Tensor) -> Tensor:
    """The error function 2/sqrt(pi) integral_0^x e^(-t^2) dt."""
    return Erf.apply(as_float(input))


def sign(input: Tensor) -> Tensor:
    """-1, 0 or 1 (0 for NaN, as torch.sign)."""
    return PiecewiseConstant.apply(input, "sign")


def _rounding(kernel: str):
    def op(input: Tensor) -> Tensor:
        _no_bool(input, kernel)
        return PiecewiseConstant.apply(input, kernel)

    op.__name__ = op.__qualname__ = kernel
    op.__doc__ = f"{kernel}(x), elementwise; integer tensors are returned unchanged (a copy)."
    return op


floor, ceil, trunc = _rounding("floor"), _rounding("ceil"), _rounding("trunc")


def round(input: Tensor, *, decimals: int = 0) -> Tensor:
    """Round half to even, to `decimals` digits after the point."""
    _no_bool(input, "round")
    return PiecewiseConstant.apply(input, "round", int(decimals))


def frac(input: Tensor) -> Tensor:
    """x - trunc(x)"""
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"frac: expected a floating point tensor, got {input.dtype}")
    return Frac.apply(input)


def isnan(input: Tensor) -> Tensor:
    return run("isnan", input)


def isinf(input: Tensor) -> Tensor:
    return run("isinf", input)


def isfinite(input: Tensor) -> Tensor:
    return run("isfinite", input)


def nan_to_num(input: Tensor, nan: float = 0.0, posinf: float | None = None,
               neginf: float | None = None) -> Tensor:
    """NaN -> nan, +inf -> posinf, -inf -> neginf (None: the dtype's largest / lowest finite value)."""
    return NanToNum.apply(input, float(nan), posinf, neginf)


negative, absolute, fix = neg, abs, trunc
