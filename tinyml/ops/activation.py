"""Activation functions, each one Function over a fused forward kernel and a fused backward kernel
(`<name>_forward(x, *params)`, `<name>_backward(x, dy, *params)`; the math is in
backends/reference/activation.py). Only the input x is saved for backward.

    gelu(x) = x Phi(x)        silu(x) = x sigmoid(x)          swiglu(a, b) = silu(a) * b
    softplus(x) = log(1 + e^(beta x)) / beta                  mish(x) = x tanh(softplus(x))
    leaky_relu, elu, hardtanh, relu6 = hardtanh(x, 0, 6), glu, logsigmoid = -softplus(-x)
"""
from __future__ import annotations

from ..autograd import Function
from ..tensor import Tensor, _wrap_dim
from ._broadcast import prepare
from ._dispatch import run
from .inplace import apply_inplace

__all__ = [
    "elu",
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
    """y = kernel `<name>_forward(x, *params)`; dx = `<name>_backward(x, dy, *params)`."""

    kernel = ""

    @staticmethod
    def forward(ctx, x, *params):
        ctx.save_for_backward(x)
        ctx.params = params
        return run(ctx.fn.kernel + "_forward", x, *params)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (run(ctx.fn.kernel + "_backward", x, g, *ctx.params),) + (None,) * len(ctx.params)


class Gelu(_Activation):
    kernel = "gelu"


class Silu(_Activation):
    kernel = "silu"


class Softplus(_Activation):
    kernel = "softplus"


class LeakyRelu(_Activation):
    kernel = "leaky_relu"


class Elu(_Activation):
    kernel = "elu"


class Hardtanh(_Activation):
    kernel = "hardtanh"


class Mish(_Activation):
    kernel = "mish"


class Glu(_Activation):
    kernel = "glu"


class LogSigmoid(_Activation):
    kernel = "logsigmoid"


class Swiglu(Function):
    """silu(a) * b in one kernel: no silu(a) intermediate is stored, only a and b."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return run("swiglu_forward", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
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
    return Softplus.apply(_floating(input, "softplus"), float(beta), float(threshold))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, negative_slope * x elsewhere."""
    y = LeakyRelu.apply(_floating(input, "leaky_relu"), float(negative_slope))
    return _maybe_inplace(input, y, inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, alpha (exp(x) - 1) elsewhere."""
    return _maybe_inplace(input, Elu.apply(_floating(input, "elu"), float(alpha)), inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """clamp(x, min_val, max_val); the gradient is zero outside (and at) the bounds."""
    if min_val > max_val:
        raise ValueError(f"min_val cannot be greater than max_val, got min_val={min_val}, max_val={max_val}")
    return _maybe_inplace(input, Hardtanh.apply(_floating(input, "hardtanh"), float(min_val), float(max_val)),
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
