"""Activation functions, each one Function over a fused forward kernel and a fused backward kernel
(`<name>_forward(x, *params)`, `<name>_backward(x, dy, *params)`; the math is in
backends/reference/activation.py). Only the input x is saved for backward.

Under create_graph=True each backward builds the same derivative from differentiable tensor ops
(`formula`), so second derivatives are exact (docs/internals.md, section 7).

    gelu(x) = x Phi(x)        silu(x) = x sigmoid(x)          swiglu(a, b) = silu(a) * b
    softplus(x) = log(1 + e^(beta x)) / beta                  mish(x) = x tanh(softplus(x))
    leaky_relu, elu, hardtanh, relu6 = hardtanh(x, 0, 6), glu, logsigmoid = -softplus(-x)
"""
from __future__ import annotations

import math
import numbers

from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor, _wrap_dim
from ._broadcast import prepare
from .inplace import apply_inplace
from .movement_copy import cat
from .pointwise import clamp, where
from .slicing import chunk
from .unary import erf, exp, sigmoid, tanh

__all__ = [
    "elu",
    "selu",
    "gelu",
    "glu",
    "hardtanh",
    "leaky_relu",
    "logsigmoid",
    "mish",
    "relu6",
    "silu",
    "softplus",
    "swiglu",
]


class _Activation(Function):
    """y = kernel `forward_kernel(x, *params)`; dx = `backward_kernel(x, dy, *params)`, or under
    create_graph the subclass's `formula(x, dy, *params)`. Each subclass names its two kernels."""

    forward_kernel = backward_kernel = ""

    @staticmethod
    def forward(ctx, x, *params):
        ctx.save_for_backward(x)
        ctx.params = params
        return run(ctx.fn.forward_kernel, x, *params)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the derivative from differentiable tensor ops
            return (ctx.fn.formula(x, g, *ctx.params),) + (None,) * len(ctx.params)
        return (run(ctx.fn.backward_kernel, x, g, *ctx.params),) + (None,) * len(ctx.params)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_KAPPA = 0.044715


class Gelu(_Activation):
    forward_kernel, backward_kernel = "gelu_forward", "gelu_backward"

    @staticmethod
    def formula(x, g, approximate):
        if approximate == "tanh":  # t = tanh(k (x + kappa x^3))
            t = tanh((x + x * x * x * _KAPPA) * _SQRT_2_OVER_PI)
            dt = (1 - t * t) * (x * x * (3 * _KAPPA) + 1) * _SQRT_2_OVER_PI  # d t / d x
            return g * ((t + 1) * 0.5 + x * dt * 0.5)
        return g * (erf(x * math.sqrt(0.5)) * 0.5 + 0.5 + x * exp(x * x * -0.5) * _INV_SQRT_2PI)


class Silu(_Activation):
    forward_kernel, backward_kernel = "silu_forward", "silu_backward"

    @staticmethod
    def formula(x, g):
        s = sigmoid(x)
        return g * s * (x * (1 - s) + 1)


class Softplus(_Activation):
    forward_kernel, backward_kernel = "softplus_forward", "softplus_backward"

    @staticmethod
    def formula(x, g, beta, threshold):
        bx = x * beta
        return where(bx > threshold, g, g * sigmoid(bx))


class LeakyRelu(_Activation):
    forward_kernel, backward_kernel = "leaky_relu_forward", "leaky_relu_backward"

    @staticmethod
    def formula(x, g, negative_slope):
        return where(x > 0, g, g * negative_slope)


class Elu(_Activation):
    forward_kernel, backward_kernel = "elu_forward", "elu_backward"

    @staticmethod
    def formula(x, g, alpha):
        return where(x > 0, g, g * exp(clamp(x, max=0)) * alpha)  # clamp: no 0 * inf from the unused side


class Hardtanh(_Activation):
    forward_kernel, backward_kernel = "hardtanh_forward", "hardtanh_backward"

    @staticmethod
    def formula(x, g, min_val, max_val):
        return where(x > min_val, where(x < max_val, g, 0.0), 0.0)


class Mish(_Activation):
    forward_kernel, backward_kernel = "mish_forward", "mish_backward"

    @staticmethod
    def formula(x, g):
        t = tanh(Softplus.apply(x, 1.0, 20.0))
        return g * (t + x * sigmoid(x) * (1 - t * t))


class Glu(_Activation):
    forward_kernel, backward_kernel = "glu_forward", "glu_backward"

    @staticmethod
    def formula(x, g, dim):
        a, b = chunk(x, 2, dim)
        s = sigmoid(b)
        return cat([g * s, g * a * s * (1 - s)], dim)


class LogSigmoid(_Activation):
    forward_kernel, backward_kernel = "logsigmoid_forward", "logsigmoid_backward"

    @staticmethod
    def formula(x, g):
        return g * sigmoid(-x)


class Swiglu(Function):
    """silu(a) * b in one kernel: no silu(a) intermediate is stored, only a and b."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return run("swiglu_forward", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the derivative from differentiable tensor ops
            s = sigmoid(a)
            return g * b * s * (a * (1 - s) + 1), g * a * s
        return run("swiglu_backward", a, b, g)


def _floating(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{name}(): expected a floating point input (float16, bfloat16, float32, "
                           f"float64), got dtype {x.dtype}")
    return x


def _maybe_inplace(x: Tensor, y: Tensor, inplace: bool) -> Tensor:
    if not inplace:
        return y
    return apply_inplace(x, y)


def _number(fn: str, name: str, v) -> float:
    """A scalar argument as a float; a string, None or a tensor is a TypeError naming the argument (float()
    would take '2' and fail on 'a' with a message that names neither the function nor the argument)."""
    if isinstance(v, (str, bytes)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{fn}(): argument '{name}' must be a number, not {type(v).__name__} ({v!r})")
    return float(v)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x Phi(x) with Phi the standard normal CDF; approximate="tanh" uses the tanh formula."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return Gelu.apply(_floating(input, "gelu"), approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return _maybe_inplace(input, Silu.apply(_floating(input, "silu")), inplace)


def swiglu(a: Tensor, b: Tensor) -> Tensor:
    """silu(a) * b, fused (the gated MLP of Llama-style models); a and b broadcast."""
    if not isinstance(b, Tensor):
        raise TypeError(f"swiglu(): argument 'b' must be a Tensor, not {type(b).__name__}")
    a, b = prepare(_floating(a, "swiglu"), b, "swiglu")
    return Swiglu.apply(a, b)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (for stability)."""
    beta, threshold = _number("softplus", "beta", beta), _number("softplus", "threshold", threshold)
    return Softplus.apply(_floating(input, "softplus"), beta, threshold)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, negative_slope * x elsewhere."""
    slope = _number("leaky_relu", "negative_slope", negative_slope)
    y = LeakyRelu.apply(_floating(input, "leaky_relu"), slope)
    return _maybe_inplace(input, y, inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, alpha (exp(x) - 1) elsewhere."""
    return _maybe_inplace(input, Elu.apply(_floating(input, "elu"), _number("elu", "alpha", alpha)), inplace)


SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants of Klambauer et al. (torch's)."""
    y = Elu.apply(_floating(input, "selu"), SELU_ALPHA) * SELU_SCALE
    return _maybe_inplace(input, y, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """clamp(x, min_val, max_val); the gradient is zero outside (and at) the bounds."""
    min_val, max_val = _number("hardtanh", "min_val", min_val), _number("hardtanh", "max_val", max_val)
    if min_val > max_val:
        raise ValueError(f"min_val cannot be greater than max_val, got min_val={min_val}, max_val={max_val}")
    return _maybe_inplace(input, Hardtanh.apply(_floating(input, "hardtanh"), min_val, max_val),
                          inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6) = hardtanh(x, 0, 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x tanh(softplus(x))."""
    return _maybe_inplace(input, Mish.apply(_floating(input, "mish")), inplace)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), where a and b are the first and second halves of input along `dim`."""
    x = _floating(input, "glu")
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = _wrap_dim(dim, x.ndim)
    if x.shape[d] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {x.shape[d]} "
                           f"(input shape {tuple(x.shape)})")
    return Glu.apply(x, d)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)), stable for large |x|."""
    return LogSigmoid.apply(_floating(input, "logsigmoid"))
