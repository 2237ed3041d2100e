"""Binary elementwise ops with broadcasting and PyTorch's type promotion.

Each op promotes and broadcasts its operands first (`_broadcast.prepare`: one dtype, one shape,
or a Python scalar on one side), then a Function runs the kernel of the same name in
`backends/*/elementwise`. Derivatives:

    d(a+b) = (g, g)             d(a-b) = (g, -g)             d(a*b) = (g b, g a)
    d(a/b) = (g/b, -g a/b^2)    d(a^b) = (g b a^(b-1), g a^b ln a)
    remainder: (g, -g floor(a/b))    fmod: (g, -g trunc(a/b))    rounded division: (0, 0)

Complex operands (complex64 / complex128): add and sub as they are, mul, div and pow (to a number)
through `_complex_grad.holomorphic` (d(a*b) = (g conj(b), g conj(a)), ...); ordering comparisons
and rounded division refuse them.
Comparisons, logical and bitwise ops return bool (bitwise: the operands' dtype) and record no
gradient. Unary math lives in `unary.py`; where/min/max/clamp/lerp/addc* in `pointwise.py`.
"""
from __future__ import annotations

import math

from .. import autograd as _ag
from .. import dtypes as _dt
from .._apply_exact import apply2
from .._saved_output import saved_two
from ..autograd import Function, is_grad_enabled
from ..backends import run, run2
from ..tensor import Tensor
from . import _complex_grad as cx
from ._broadcast import complex_unsupported, kernel_ready, negated, prepare, times
from .pointwise import where
from .unary import log

__all__ = ["add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
           "remainder", "fmod", "pow", "float_power", "eq", "ne", "lt", "le", "gt", "ge", "greater",
           "greater_equal", "less",
           "less_equal", "not_equal", "equal", "logical_and", "logical_or", "logical_xor", "logical_not",
           "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"]


# _SAME: add, sub, mul and div first test for the common operands that `prepare` returns unchanged (a
# floating tensor with a float, or with a tensor of its dtype and shape) and skip its call (issue 16:
# one Python frame less per op); anything else goes through prepare.


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = run2("add", a, b)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = run2("sub", a, b)
        return cx.join_graph(ctx, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        if not ctx.needs_input_grad[1]:
            return g, None
        return g, negated(g)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        if need_a or need_b:  # nothing to keep when the call records no node (no_grad, a backward formula)
            # save each operand only if the other side's gradient needs it; scalars stay on ctx
            # (scalars only: a tensor kept here would live as long as the graph, unseen by memory.saved_bytes)
            if type(a) is Tensor:
                if type(b) is Tensor:  # save_for_backward(a if need_b, b if need_a), without its frame
                    ctx._saved = ((a, a._version[0]) if need_b else None,
                                  (b, b._version[0]) if need_a else None)
                else:
                    ctx.save_for_backward(a if need_b else None, None)
                    ctx.scalars = (None, b)
            else:
                ctx.save_for_backward(None, b if need_a else None)
                ctx.scalars = (a, None)
        out = run2("mul", a, b)
        return cx.join_graph(ctx, out, cx.holomorphic(Mul)) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        a, b = saved_two(ctx)  # ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        # a side that needs a gradient has its other operand saved, or kept in ctx.scalars
        ga = times(g, b if b is not None else ctx.scalars[1]) if need_a else None
        gb = times(g, a if a is not None else ctx.scalars[0]) if need_b else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = run2("div", a, b)
        need_a, need_b = ctx.needs_input_grad
        if need_a or need_b:  # recorded: keep b (a tensor, or the number in ctx.b) and, for b's gradient, out
            ctx.save_for_backward(b if type(b) is Tensor else None, out if need_b else None)
            ctx.b = b
        return cx.join_graph(ctx, out, cx.holomorphic(Div)) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        b, out = saved_two(ctx)  # ctx.saved_tensors
        b = b if b is not None else ctx.b
        need_a, need_b = ctx.needs_input_grad
        if not _ag._grad_enabled and kernel_ready(g, b) and (out is None or kernel_ready(g, out)):
            # the kernels `g / b` and `-(g * out) / b` run, without the ops around them
            return (run2("div", g, b) if need_a else None,
                    run2("div", negated(run2("mul", g, out)), b) if need_b else None)
        ga = g / b if need_a else None
        gb = -(g * out) / b if need_b else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = run("pow", a, b)
        ctx.save_for_backward(a if type(a) is Tensor else None, b if type(b) is Tensor else None, out)
        ctx.scalars = (a, b)
        return cx.pow_forward(ctx, a, b, out) if out.dtype.is_complex else out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        sa, sb = ctx.scalars
        a = a if a is not None else sa
        b = b if b is not None else sb
        if is_grad_enabled():  # create_graph: the same formulas from differentiable tensor ops
            return _pow_grads_differentiable(ctx.needs_input_grad, a, b, out, g)
        ga = run("pow_backward_base", a, b, g) if ctx.needs_input_grad[0] else None
        gb = run("pow_backward_exponent", a, b, out, g) if ctx.needs_input_grad[1] else None
        return ga, gb


def _pow_grads_differentiable(need, a, b, out, g):
    ga = gb = None
    if need[0]:
        ga = where(eq(b, 0), 0.0, g * b * pow(a, b - 1)) if type(b) is Tensor else (g * b * pow(a, b - 1) if b
                                                                                      else g * 0.0)
    if need[1]:
        if type(a) is Tensor:
            gb = where(eq(a, 0) & ge(b, 0), 0.0, g * out * log(a))
        else:
            gb = where(ge(b, 0), 0.0, g * out * float("-inf")) if a == 0 else g * out * math.log(a)
    return ga, gb


class Remainder(Function):
    """`kernel` is remainder (a - floor(a/b) b) or fmod (a - trunc(a/b) b); `quotient` the matching
    rounded division, whose value is the derivative with respect to -b."""

    @staticmethod
    def forward(ctx, a, b, kernel, quotient):
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(a if type(a) is Tensor else None, b)
            ctx.a, ctx.quotient = a, quotient
        return run(kernel, a, b)

    @staticmethod
    def backward(ctx, g):
        gb = None
        if ctx.needs_input_grad[1]:
            a, b = ctx.saved_tensors
            gb = -(g * run(ctx.quotient, a if a is not None else ctx.a, b))
        return (g if ctx.needs_input_grad[0] else None), gb, None, None


class RoundedDiv(Function):
    """floor or trunc division: piecewise constant, so both gradients are 0 (as PyTorch's div)."""

    @staticmethod
    def forward(ctx, a, b, kernel):
        return run(kernel, a, b)

    @staticmethod
    def backward(ctx, g):
        zero = g * 0
        return zero, zero, None


def add(input, other, *, alpha=1):
    """input + alpha * other."""
    if alpha != 1:
        other = mul(other, alpha) if type(other) is Tensor else other * alpha
    if type(input) is Tensor and input.dtype.is_floating_point and (type(other) is float or type(
            other) is Tensor and other.dtype is input.dtype and other._data.shape == input._data.shape):
        return apply2(Add, input, other)  # _SAME: prepare would return them unchanged
    a, b = prepare(input, other, "add")
    return apply2(Add, a, b)


def sub(input, other, *, alpha=1):
    """input - alpha * other."""
    if alpha != 1:
        other = mul(other, alpha) if type(other) is Tensor else other * alpha
    if type(input) is Tensor and input.dtype.is_floating_point and (type(other) is float or type(
            other) is Tensor and other.dtype is input.dtype and other._data.shape == input._data.shape):
        return apply2(Sub, input, other)  # _SAME: prepare would return them unchanged
    if (input.dtype is _dt.bool_ if type(input) is Tensor else type(input) is bool) or \
            (other.dtype is _dt.bool_ if type(other) is Tensor else type(other) is bool):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    a, b = prepare(input, other, "sub")
    return apply2(Sub, a, b)


def mul(input, other):
    """input * other."""
    if type(input) is Tensor and input.dtype.is_floating_point and (type(other) is float or type(
            other) is Tensor and other.dtype is input.dtype and other._data.shape == input._data.shape):
        return apply2(Mul, input, other)  # _SAME: prepare would return them unchanged
    a, b = prepare(input, other, "mul")
    return apply2(Mul, a, b)


def _rounded_div(input, other, kernel: str, name: str):
    a, b = prepare(input, other, name)
    dt = a.dtype if type(a) is Tensor else b.dtype
    if dt is _dt.bool_ or dt.is_complex:
        raise (complex_unsupported(name, dt) if dt.is_complex else
               NotImplementedError(f"{name}: rounded division is not implemented for bool tensors"))
    return RoundedDiv.apply(a, b, kernel)


def div(input, other, *, rounding_mode: str | None = None):
    """True division (integers promote to the default float); rounding_mode 'trunc' or 'floor'
    rounds the quotient and keeps the promoted dtype of the operands."""
    if rounding_mode is not None:
        if rounding_mode == "floor":
            return _rounded_div(input, other, "floor_divide", "div")
        if rounding_mode == "trunc":
            return _rounded_div(input, other, "div_trunc", "div")
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"{rounding_mode!r}")
    if type(input) is Tensor and input.dtype.is_floating_point and (type(other) is float or type(
            other) is Tensor and other.dtype is input.dtype and other._data.shape == input._data.shape):
        return apply2(Div, input, other)  # _SAME: prepare would return them unchanged
    a, b = prepare(input, other, "div")
    dt = a.dtype if type(a) is Tensor else b.dtype
    if not (dt.is_floating_point or dt.is_complex):  # integers divide in the default float
        a, b = prepare(input, other, "div", dtype=_dt.get_default_dtype())
    return apply2(Div, a, b)


def floor_divide(input, other):
    """floor(input / other), in the promoted dtype."""
    return _rounded_div(input, other, "floor_divide", "floor_divide")


def _remainder(input, other, kernel: str, quotient: str):
    a, b = prepare(input, other, kernel)
    dt = a.dtype if type(a) is Tensor else b.dtype
    if dt is _dt.bool_ or dt.is_complex:
        raise complex_unsupported(kernel, dt) if dt.is_complex else NotImplementedError(
            f"{kernel}: not implemented for bool tensors")
    return Remainder.apply(a, b, kernel, quotient)


def remainder(input, other):
    """input - floor(input / other) * other: the sign of `other`, like Python's %."""
    return _remainder(input, other, "remainder", "floor_divide")


def fmod(input, other):
    """input - trunc(input / other) * other: the sign of `input`, like C's fmod."""
    return _remainder(input, other, "fmod", "div_trunc")


def pow(input, exponent):
    """input ** exponent; an integer tensor to a negative integer scalar power raises, as in PyTorch."""
    a, b = prepare(input, exponent, "pow")
    if type(b) is not Tensor and type(a) is Tensor and not (a.dtype.is_floating_point or a.dtype.is_complex) \
            and b < 0:
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return Pow.apply(a, b)


def float_power(input, exponent):
    """pow computed in float64."""
    a, b = prepare(input, exponent, "float_power", dtype=_dt.float64)
    return Pow.apply(a, b)


subtract, multiply, divide, true_divide = sub, mul, div, div


def _binary_nograd(kernel: str, doc: str, kinds: str = "any"):
    """A non-differentiable binary op over promoted, broadcast operands (comparisons, logic, bits)."""

    def op(input, other):
        if other is None and kernel in ("eq", "ne"):
            return kernel == "ne"  # `t == None` is False, as in PyTorch
        a, b = prepare(input, other, kernel)
        if kinds == "ordered" and (a.dtype if type(a) is Tensor else b.dtype).is_complex:
            raise complex_unsupported(kernel, a.dtype if type(a) is Tensor else b.dtype)  # no order on C
        if kinds == "integral":
            dt = a.dtype if type(a) is Tensor else b.dtype
            if dt.is_floating_point:
                raise NotImplementedError(f"{kernel}: expected integral or bool tensors, got {dt} (from "
                                   f"{_dtype_name(input)} and {_dtype_name(other)})")
        return run(kernel, a, b)

    op.__name__ = op.__qualname__ = kernel
    op.__doc__ = doc
    return op


def _dtype_name(x) -> str:
    return str(x.dtype) if type(x) is Tensor else type(x).__name__


eq = _binary_nograd("eq", "input == other, elementwise with broadcasting (a bool tensor).")
ne = _binary_nograd("ne", "input != other, elementwise with broadcasting (a bool tensor).")
lt = _binary_nograd("lt", "input < other, elementwise with broadcasting (a bool tensor).", "ordered")
le = _binary_nograd("le", "input <= other, elementwise with broadcasting (a bool tensor).", "ordered")
gt = _binary_nograd("gt", "input > other, elementwise with broadcasting (a bool tensor).", "ordered")
ge = _binary_nograd("ge", "input >= other, elementwise with broadcasting (a bool tensor).", "ordered")
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
logical_and = _binary_nograd("logical_and", "input != 0 and other != 0 (a bool tensor).")
logical_or = _binary_nograd("logical_or", "input != 0 or other != 0 (a bool tensor).")
logical_xor = _binary_nograd("logical_xor", "(input != 0) != (other != 0) (a bool tensor).")
bitwise_and = _binary_nograd("bitwise_and", "input & other for integer and bool tensors.", "integral")
bitwise_or = _binary_nograd("bitwise_or", "input | other for integer and bool tensors.", "integral")
bitwise_xor = _binary_nograd("bitwise_xor", "input ^ other for integer and bool tensors.", "integral")


def equal(input: Tensor, other: Tensor) -> bool:
    """True when both tensors have the same shape and elements."""
    return tuple(input.shape) == tuple(other.shape) and ne(input, other).sum().item() == 0


def logical_not(input: Tensor) -> Tensor:
    """input == 0 (a bool tensor)."""
    return run("logical_not", input)


def bitwise_not(input: Tensor) -> Tensor:
    """~input: bitwise complement of integers, logical not of bools."""
    if input.dtype.is_floating_point:
        raise NotImplementedError(f"bitwise_not: expected an integral or bool tensor, got {input.dtype}")
    return run("bitwise_not", input)
