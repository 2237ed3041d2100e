"""Elementwise ops with broadcasting and PyTorch's type promotion.

Each op is a Function over same-shape operands (see `_broadcast.prepare`) that runs one kernel
of the same name in `backends/*/elementwise`. Derivatives:

    d(a+b) = (g, g)             d(a-b) = (g, -g)          d(a*b) = (g b, g a)
    d(a/b) = (g/b, -g a/b^2)    d(a^b) = (g b a^(b-1), g a^b ln a)
    d exp x = g e^x             d log x = g/x             d tanh x = g (1 - y^2)
    d sigmoid x = g y (1 - y)   d relu x = g [x > 0]
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd import Function
from ..tensor import Tensor
from ._broadcast import as_float, broadcast_shapes, prepare
from ._dispatch import run

__all__ = ["add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "neg", "negative", "pow",
           "exp", "log", "tanh", "sigmoid", "relu", "where", "eq", "ne", "lt", "le", "gt", "ge"]


def _is_t(x) -> bool:
    return type(x) is Tensor


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return run("add", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return run("sub", a, b)

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] and _is_t(a) else None,
                              b if ctx.needs_input_grad[0] and _is_t(b) else None)
        ctx.scalars = (a, b)
        return run("mul", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, sb = ctx.scalars
        ga = (g * (b if b is not None else sb)) if ctx.needs_input_grad[0] else None
        gb = (g * (a if a is not None else sa)) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = run("div", a, b)
        ctx.save_for_backward(b if _is_t(b) else None, out if ctx.needs_input_grad[1] else None)
        ctx.b = b
        return out

    @staticmethod
    def backward(ctx, g):
        b, out = ctx.saved_tensors
        b = b if b is not None else ctx.b
        ga = g / b if ctx.needs_input_grad[0] else None
        gb = -(g * out) / b if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return run("neg", x)

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = run("pow", a, b)
        ctx.save_for_backward(a if _is_t(a) else None, b if _is_t(b) else None, out)
        ctx.scalars = (a, b)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        sa, sb = ctx.scalars
        a = a if a is not None else sa
        b = b if b is not None else sb
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = g * b * pow(a, b - 1) if _is_t(b) or b != 0 else g * 0.0
        if ctx.needs_input_grad[1]:
            # d/db a^b = a^b ln a, taken as 0 where a == 0 and b >= 0 (PyTorch's convention)
            ln_a = log(a) if _is_t(a) else log(Tensor(a, dtype=out.dtype, device=out.device))
            gb = g * where(eq(out, 0.0) & ge(b, 0.0), 0.0, out * ln_a)
        return ga, gb


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = run("exp", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return run("log", x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = run("tanh", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return run("tanh_backward", y, g)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = run("sigmoid", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return run("sigmoid_backward", y, g)


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        y = run("relu", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return run("relu_backward", y, g)


def add(input, other, *, alpha=1):
    """input + alpha * other."""
    if alpha != 1:
        other = mul(other, alpha)
    a, b = prepare(input, other, "add")
    return Add.apply(a, b)


def sub(input, other, *, alpha=1):
    """input - alpha * other."""
    if alpha != 1:
        other = mul(other, alpha)
    a, b = prepare(input, other, "sub")
    if a.dtype is _dt.bool_ if _is_t(a) else False:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported; use "
                           "logical_xor() instead")
    return Sub.apply(a, b)


def mul(input, other):
    a, b = prepare(input, other, "mul")
    return Mul.apply(a, b)


def div(input, other, *, rounding_mode: str | None = None):
    """True division (ints promote to the default float); rounding_mode 'trunc' or 'floor'."""
    if rounding_mode is not None:
        from .elementwise_math import floor_divide, trunc

        if rounding_mode == "floor":
            return floor_divide(input, other)
        if rounding_mode == "trunc":
            return trunc(div(input, other)).to(_dt.result_type(input, other))
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    dt = _dt.result_type(input, other)
    a, b = prepare(input, other, "div", dtype=dt if dt.category == 2 else _dt.get_default_dtype())
    return Div.apply(a, b)


def neg(input):
    if input.dtype is _dt.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported; use logical_not()")
    return Neg.apply(input)


def pow(input, exponent):
    """input ** exponent; an int tensor to a negative int power raises, as in PyTorch."""
    a, b = prepare(input, exponent, "pow")
    if not _is_t(b) and _is_t(a) and a.dtype.category < 2 and b < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return Pow.apply(a, b)


subtract, multiply, divide, true_divide, negative = sub, mul, div, div, neg


def exp(input):
    return Exp.apply(as_float(input))


def log(input):
    return Log.apply(as_float(input))


def tanh(input):
    return Tanh.apply(as_float(input))


def sigmoid(input):
    return Sigmoid.apply(as_float(input))


def relu(input):
    return Relu.apply(input)


def _compare(kernel: str):
    def op(input, other):
        a, b = prepare(input, other, kernel)
        return run(kernel, a, b)

    op.__name__ = kernel
    op.__doc__ = f"Elementwise `{kernel}` comparison with broadcasting; a bool tensor, not differentiable."
    return op


eq, ne, lt, le, gt, ge = (_compare(k) for k in ("eq", "ne", "lt", "le", "gt", "ge"))


class Where(Function):
    """out = cond ? a : b; gradients flow to the selected side only."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return run("where", cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        zero = 0.0
        ga = run("where", cond, g, zero) if ctx.needs_input_grad[1] else None
        gb = run("where", cond, zero, g) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def where(condition, input=None, other=None):
    """Elements of `input` where `condition` holds, else of `other` (tensors or scalars, broadcast)."""
    if input is None and other is None:
        from .indexing import nonzero

        return nonzero(condition, as_tuple=True)
    if condition.dtype is not _dt.bool_:
        condition = condition.to(_dt.bool_)
    a, b = prepare(input, other, "where")
    ref = a if _is_t(a) else b
    shape = broadcast_shapes(condition.shape, ref.shape if _is_t(ref) else ())
    if condition.shape != shape:
        condition = condition.expand(shape)
    if _is_t(a) and a.shape != shape:
        a = a.expand(shape)
    if _is_t(b) and b.shape != shape:
        b = b.expand(shape)
    if not _is_t(a) and not _is_t(b):
        raise TypeError("where: at least one of input and other must be a Tensor")
    return Where.apply(condition, a, b)
