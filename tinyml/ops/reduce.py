"""Reductions over `dim` (an int, a tuple, or None for all) with `keepdim`, PyTorch's semantics.

    sum:       dx = g                                  mean: dx = g / n
    var:       dx = g 2 (x - mean) / (n - c)           std:  dx = var's dx with g / (2 std) (0 where std = 0)
    prod:      dx_i = g prod_{j != i} x_j              logsumexp: dx = g exp(x - y) = g softmax(x)
    norm:      see the `norm_backward` kernel (p = 2: g x / y, 0 at the zero vector)
(g is the upstream gradient with the reduced dims put back as size 1, broadcast over x; n the
number of reduced elements, c the correction.) max/min/amax/amin/argmax/argmin live in
reduce_minmax.py and cumsum/cumprod in cumulative.py; both are re-exported here.
"""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from . import _complex_grad as cx
from . import _reduce_grad
from ._broadcast import as_float, complex_unsupported
from ._reduce_dims import reduce_dims, reduced_numel, unsqueeze_reduced
from .cumulative import cumprod, cumsum
from .pointwise import clamp_min, where
from .reduce_minmax import amax, amin, argmax, argmin, max, min
from .unary import exp

__all__ = ["all", "amax", "amin", "any", "argmax", "argmin", "count_nonzero", "cumprod", "cumsum",
           "logsumexp", "max", "mean", "min", "norm", "normalize", "prod", "std", "std_mean", "sum", "var",
           "var_mean"]


def _int_to_long(x: Tensor) -> _dt.dtype:
    """The default result dtype of sum/prod/cumsum: bool and integers accumulate in int64."""
    return x.dtype if x.dtype.is_floating_point or x.dtype.is_complex else _dt.int64


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.in_shape, ctx.dims, ctx.keepdim = x.shape, dims, keepdim
        out = run("sum", x, dims, keepdim, dtype.np)
        return cx.join_graph(ctx, out) if dtype.is_complex else out  # autograd links floats only

    @staticmethod
    def backward(ctx, g):
        g = unsqueeze_reduced(g, ctx.in_shape, ctx.dims, ctx.keepdim)
        return g.expand(ctx.in_shape), None, None, None


def sum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over `dim`; integer and bool inputs sum to int64, as in PyTorch. Empty sums are 0."""
    dtype = _int_to_long(input) if dtype is None else _dt.as_dtype(dtype)
    if dtype is not input.dtype:
        input = input.to(dtype)
    return Sum.apply(input, reduce_dims(dim, input, "sum"), keepdim, dtype)


def mean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """sum / n over `dim`; floating inputs only (or pass dtype=). The mean of nothing is NaN."""
    if dtype is not None:
        input = input.to(dtype)
    if not (input.dtype.is_floating_point or input.dtype.is_complex):
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating "
                           f"point or complex dtype. Got: {input.dtype}; pass dtype= or convert with "
                           f".float()")
    dims = reduce_dims(dim, input, "mean")
    n = reduced_numel(input.shape, dims)
    total = Sum.apply(input, dims, keepdim, input.dtype)
    return total / n if n else total * float("nan")


# ---- variance and standard deviation ---------------------------------------------------------------
class VarStd(Function):
    """var (take_sqrt=False) or std (take_sqrt=True) with Bessel-style `correction`."""

    @staticmethod
    def forward(ctx, x, dims, correction, keepdim, take_sqrt):
        y = run("std" if take_sqrt else "var", x, dims, correction, keepdim)
        ctx.save_for_backward(x, y if take_sqrt else None)
        ctx.dims, ctx.correction, ctx.keepdim, ctx.take_sqrt = dims, correction, keepdim, take_sqrt
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        dims = ctx.dims
        g = unsqueeze_reduced(g, x.shape, dims, ctx.keepdim)
        if ctx.take_sqrt:
            # d sqrt(v) = dv / (2 sqrt(v)); PyTorch takes 0 where std is 0 (a constant slice)
            if is_grad_enabled():  # create_graph: y must depend on x for higher derivatives
                y = VarStd.apply(x, dims, ctx.correction, True, True)
            y = unsqueeze_reduced(y, x.shape, dims, ctx.keepdim)
            zero = y == 0
            g = where(zero, 0.0, g / (where(zero, 1.0, y) * 2))
        dof = reduced_numel(x.shape, dims) - ctx.correction
        scale = 2.0 / dof if dof != 0 else math.inf
        return (x - mean(x, dims, keepdim=True)) * (g * scale), None, None, None, None


def _correction(name: str, unbiased, correction) -> float:
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{name}(): cannot specify both unbiased={unbiased} and correction={correction}")
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def _var_std(name: str, input: Tensor, dim, unbiased, keepdim: bool, correction, take_sqrt: bool) -> Tensor:
    if isinstance(dim, bool):  # var(x, unbiased) as in PyTorch's second overload
        dim, unbiased = None, dim
    if not input.dtype.is_floating_point:
        if input.dtype.is_complex:
            raise complex_unsupported(name, input.dtype)
        raise RuntimeError(f"{name}(): std and var only support floating point and complex dtypes, got "
                           f"{input.dtype}")
    c = _correction(name, unbiased, correction)
    return VarStd.apply(input, reduce_dims(dim, input, name), c, keepdim, take_sqrt)


def var(input: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction=None) -> Tensor:
    """sum (x - mean)^2 / max(n - correction, 0) over `dim`; correction=1 (unbiased) by default."""
    return _var_std("var", input, dim, unbiased, keepdim, correction, False)


def std(input: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction=None) -> Tensor:
    """sqrt(var(input, dim, correction))."""
    return _var_std("std", input, dim, unbiased, keepdim, correction, True)


def var_mean(input: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction=None) -> tuple[Tensor, Tensor]:
    """(var, mean) over the same dims."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return (var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


def std_mean(input: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction=None) -> tuple[Tensor, Tensor]:
    """(std, mean) over the same dims."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return (std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim))


# ---- products and log-sum-exp ------------------------------------------------------------------------
class Prod(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, dtype):
        ctx.save_for_backward(x)
        ctx.dims, ctx.keepdim = dims, keepdim
        return run("prod", x, dims, keepdim, dtype.np)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g = unsqueeze_reduced(g, x.shape, ctx.dims, ctx.keepdim)
        if is_grad_enabled():
            y = Prod.apply(x, ctx.dims, True, x.dtype)
            return _reduce_grad.prod_grad(x, y, g), None, None, None
        return run("prod_backward", x, g, ctx.dims), None, None, None


def prod(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product over `dim` (None: all); integer and bool inputs give int64. The empty product is 1.
    The gradient is exact with zeros in the input (no division by x)."""
    dtype = _int_to_long(input) if dtype is None else _dt.as_dtype(dtype)
    if dtype.is_complex:  # the gradient formula is the real one
        raise complex_unsupported("prod", dtype)
    if dtype is not input.dtype:
        input = input.to(dtype)
    return Prod.apply(input, reduce_dims(dim, input, "prod"), keepdim, dtype)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        y = run("logsumexp", x, dims, keepdim)
        ctx.save_for_backward(x, y)
        ctx.dims, ctx.keepdim = dims, keepdim
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: y must depend on x for higher derivatives
            y = LogSumExp.apply(x, ctx.dims, True)
        y = unsqueeze_reduced(y, x.shape, ctx.dims, ctx.keepdim)
        g = unsqueeze_reduced(g, x.shape, ctx.dims, ctx.keepdim)
        return g * exp(x - y), None, None


def logsumexp(input: Tensor, dim, keepdim: bool = False) -> Tensor:
    """log sum exp(x) over `dim`, computed as m + log sum exp(x - m) with m the max (no overflow).
    Integer inputs are promoted to the default float dtype; the empty logsumexp is -inf."""
    x = as_float(input)
    return LogSumExp.apply(x, reduce_dims(dim, x, "logsumexp"), keepdim)


# ---- logical reductions --------------------------------------------------------------------------------
def all(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element over `dim` is nonzero; bool result (uint8 for uint8 input). Not
    differentiable. all() of nothing is True."""
    return run("all", input, reduce_dims(dim, input, "all", empty_is_all=False), keepdim)


def any(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element over `dim` is nonzero; bool result (uint8 for uint8 input)."""
    return run("any", input, reduce_dims(dim, input, "any", empty_is_all=False), keepdim)


def count_nonzero(input: Tensor, dim=None) -> Tensor:
    """The number of nonzero elements over `dim` (all when None), int64 (torch.count_nonzero; dim
    may be an int or a tuple; no keepdim). NaN counts as nonzero."""
    nonzero = input != 0
    return nonzero.sum(dtype=_dt.int64) if dim is None else nonzero.sum(dim=dim, dtype=_dt.int64)


# ---- norms --------------------------------------------------------------------------------------------
class Norm(Function):
    @staticmethod
    def forward(ctx, x, p, dims, keepdim):
        y = run("norm", x, p, dims, keepdim)
        ctx.save_for_backward(x, y)
        ctx.p, ctx.dims, ctx.keepdim = p, dims, keepdim
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        y = unsqueeze_reduced(y, x.shape, ctx.dims, ctx.keepdim)
        g = unsqueeze_reduced(g, x.shape, ctx.dims, ctx.keepdim)
        if is_grad_enabled():
            y = Norm.apply(x, ctx.p, ctx.dims, True)
            return _reduce_grad.norm_grad(x, y, g, ctx.p, ctx.dims), None, None, None
        return run("norm_backward", x, y, g, ctx.p, ctx.dims), None, None, None


def _norm_order(p, dim) -> float:
    if p is None:
        return 2.0
    if isinstance(p, str):
        if p == "fro":
            if dim is None or isinstance(dim, int) or len(dim) <= 2:
                return 2.0
            raise RuntimeError(f"norm(): the Frobenius norm takes at most 2 dims, got dim={dim}")
        if p == "nuc":
            raise NotImplementedError("norm(p='nuc') needs singular values, which tinyml does not compute; "
                                      "use p='fro' or a numeric p")
        raise ValueError(f"norm(): p must be a number, 'fro' or 'nuc', got {p!r}")
    return float(p)


def norm(input: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Vector p-norm over `dim` (None: all elements): (sum |x|^p)^(1/p); p = inf / -inf the max /
    min of |x|; p = 0 the count of nonzeros; 'fro' (the default) is p = 2. Floating or complex inputs."""
    order = _norm_order(p, dim)
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype.is_complex:
        input = input.abs()  # the norm of complex numbers is that of their moduli (a real result, as torch)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{input.dtype}")
    dims = reduce_dims(dim, input, "norm")
    if math.isinf(order) and input.numel() == 0 and reduced_numel(input.shape, dims) == 0:
        raise RuntimeError(f"linalg.vector_norm cannot compute the {order} norm on an empty tensor because "
                           f"the operation does not have an identity (input shape {tuple(input.shape)}, "
                           f"dim={dim})")
    return Norm.apply(input, order, dims, keepdim)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """input / max(||input||_p, eps) along dim (the norm is kept as a broadcast dim)."""
    if out is not None:
        raise TypeError("normalize: out= is not supported by tinyml; assign the result instead")
    denom = clamp_min(norm(input, p, dim, keepdim=True), eps)
    return input / denom
