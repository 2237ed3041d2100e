"""nn ops: fused softmax and log_softmax over one dimension (each saves only its output), plus
linear, dropout and normalize, written over other ops. Norms, losses and attention live in
norm.py, loss.py and attention.py beside this module.

    linear(x, W, b) = x W^T + b
    dropout(x)      = x * mask / (1 - p),  mask ~ Bernoulli(1 - p) from tinyml's seeded generator
    normalize(x)    = x / max(||x||_p, eps) along dim
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..amp import cast_inputs
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor, _wrap_dim
from ._broadcast import as_float
from .creation import rand
from .inplace import apply_inplace
from .matmul import matmul
from .pointwise import clamp_min, where
from .reduce import norm

__all__ = ["dropout", "linear", "log_softmax", "normalize", "softmax"]


class Softmax(Function):
    """y = softmax(x) along dim; dx = y (g - sum(g y)), the sum along dim."""

    @staticmethod
    def forward(ctx, x, dim):
        y = run("softmax_forward", x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            return y * (g - (g * y).sum(ctx.dim, keepdim=True)), None
        return run("softmax_backward", y, g, ctx.dim), None


class LogSoftmax(Function):
    """y = log_softmax(x) along dim; dx = g - exp(y) sum(g), the sum along dim."""

    @staticmethod
    def forward(ctx, x, dim):
        y = run("log_softmax_forward", x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            return g - y.exp() * g.sum(ctx.dim, keepdim=True), None
        return run("log_softmax_backward", y, g, ctx.dim), None


def _softmax_args(input: Tensor, dim, dtype) -> tuple[Tensor, int]:
    if dtype is not None:
        input = input.to(_dt.as_dtype(dtype))
    if dim is None:
        raise TypeError("softmax: dim must be given (implicit dim is deprecated in PyTorch too)")
    return as_float(input), (_wrap_dim(dim, input.ndim) if input.ndim else 0)


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """exp(x_i) / sum_j exp(x_j) along `dim`."""
    x, d = _softmax_args(input, dim, dtype)
    return Softmax.apply(x, d) if x.ndim else x * 0 + 1


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """x_i - log sum_j exp(x_j) along `dim`."""
    x, d = _softmax_args(input, dim, dtype)
    return LogSoftmax.apply(x, d) if x.ndim else x * 0



def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight^T + bias: input (..., in), weight (out, in), bias (out,)."""
    if weight.ndim not in (1, 2):
        raise RuntimeError(f"linear: weight must be 1-D or 2-D (out_features, in_features), got shape "
                           f"{tuple(weight.shape)}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        rows = input.numel() // max(input.shape[-1], 1) if input.ndim else 1
        cols = input.shape[-1] if input.ndim else 1
        w = tuple(weight.shape)
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and "
                           f"{w[-1]}x{w[0] if len(w) == 2 else 1}); input shape {tuple(input.shape)}, weight "
                           f"shape {w}")
    if weight.ndim == 1 or input.ndim == 1 or (bias is not None and bias.ndim != 1):
        out = matmul(input, weight.t() if weight.ndim == 2 else weight)
        return out if bias is None else out + bias

    input, weight, bias = cast_inputs(input, weight, bias)
    if input.dtype is not weight.dtype or (bias is not None and bias.dtype is not weight.dtype):
        raise RuntimeError(f"linear: expected input, weight and bias of one dtype, got {input.dtype}, "
                           f"{weight.dtype}" + ("" if bias is None else f" and {bias.dtype}"))
    return Linear.apply(input, weight, bias)


class Linear(Function):
    """y = x W^T + b for x (..., in): one graph node and one GEMM for the whole layer.

    backward, with x and g flattened to (rows, in) and (rows, out):
        dx = g W      dW = g^T x      db = sum over rows of g
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        need = ctx.needs_input_grad
        x2 = x.reshape(-1, x.shape[-1])
        # and x itself where x2 is a new tensor: made with grad off, it cannot carry a create_graph
        # dW back to x (a view of x when x is contiguous: no extra memory)
        ctx.save_for_backward(x2 if need[1] else None, weight if need[0] else None,
                              x if need[1] and x2 is not x else None)
        ctx.x_shape = x.shape
        out = run("linear", x2, weight, bias)
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, g):
        x2, weight, x = ctx.saved_tensors
        g2 = g.reshape(-1, g.shape[-1])
        need = ctx.needs_input_grad
        if is_grad_enabled():  # create_graph=True: differentiable ops, so the gradient has a graph
            x2 = x2 if x is None else x.reshape(-1, x.shape[-1])
            return ((matmul(g2, weight).reshape(ctx.x_shape) if need[0] else None),
                    (matmul(g2.mT, x2) if need[1] else None), (g2.sum(0) if need[2] else None))
        dx = run("matmul", g2, weight).reshape(ctx.x_shape) if need[0] else None
        dw = run("matmul", g2.mT, x2) if need[1] else None
        db = run("sum", g2, (0,), False, g2.dtype.np) if need[2] else None
        return dx, dw, db


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (identity when not
    training). The mask comes from tinyml's global generator: `tinyml.manual_seed` reproduces it."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"dropout: expected a floating point input, got dtype {input.dtype}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        out = input * 0.0
    else:
        keep = rand(tuple(input.shape), device=input.device) >= p
        out = input * where(keep, 1.0 / (1.0 - p), 0.0).to(input.dtype)
    if inplace:

        return apply_inplace(input, out)
    return out


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """input / max(||input||_p, eps) along dim (the norm is kept as a broadcast dim)."""
    if out is not None:
        raise TypeError("normalize: out= is not supported by tinyml; assign the result instead")
    denom = clamp_min(norm(input, p, dim, keepdim=True), eps)
    return input / denom
