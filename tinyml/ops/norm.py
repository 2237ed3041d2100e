"""Normalisation ops over the trailing dims: layer_norm, rms_norm (fused kernels over (rows, N)) and
group_norm (layer_norm over (N * groups, rest) plus a per-channel affine).

    layer_norm(x) = (x - mean) / sqrt(var + eps) * w + b        (biased var over the last k dims)
    rms_norm(x)   = x / sqrt(mean(x^2) + eps) * w
    group_norm(x) = per (sample, group) layer_norm, then * w[c] + b[c] per channel

Forward saves x and the per-row statistics (mean, rstd) only; backward recomputes the
normalised x from them (backends/reference/norm.py has the gradient formulas). Under
create_graph=True the backward recomputes mean and rstd from x with tensor ops instead, so that the
gradient is differentiable in x (second derivatives, docs/internals.md section 7).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor

__all__ = ["group_norm", "layer_norm", "rms_norm"]


class LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, rstd = run("layer_norm_forward", x, weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.eps = eps
        ctx.bias_only = weight is None and bias is not None
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, rstd = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            return LayerNorm.formula(x, weight, g, ctx.eps) + (None,)
        dx, dw, db = run("layer_norm_backward", g.contiguous(), x, weight, mean, rstd)
        if ctx.bias_only and ctx.needs_input_grad[2]:
            db = g.sum(0)  # the kernel reports dbias only alongside dweight
        need = ctx.needs_input_grad
        return dx if need[0] else None, dw if need[1] else None, db if need[2] else None, None

    @staticmethod
    def formula(x, weight, g, eps):
        """Over rows of x (rows, N), with xhat = (x - mean) rstd and gw = g w (g without weight):
        dx = rstd (gw - mean(gw) - xhat mean(gw xhat)), dw = sum over rows of g xhat, db = sum of g."""
        xc = x - x.mean(1, keepdim=True)
        rstd = ((xc * xc).mean(1, keepdim=True) + eps).rsqrt()
        xhat = xc * rstd
        gw = g if weight is None else g * weight
        dx = (gw - gw.mean(1, keepdim=True) - xhat * (gw * xhat).mean(1, keepdim=True)) * rstd
        return dx, (g * xhat).sum(0), g.sum(0)


class AddLayerNorm(Function):
    """(y, s) with s = x + residual and y = layer_norm(s) over the last dim, in one pass (a pre-LN
    transformer's residual stream). Backward: dx = dresidual = ds + layer_norm's dx(dy), the same
    bits as the separate add and layer_norm (the sum is one IEEE addition, in either order)."""

    @staticmethod
    def forward(ctx, x, residual, weight, bias, eps):
        s, y, mean, rstd = run("add_layer_norm_forward", x, residual, weight, bias, eps)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(s, weight, mean, rstd)
        ctx.eps = eps
        return y, s

    @staticmethod
    def backward(ctx, gy, gs):
        s, weight, mean, rstd = ctx.saved_tensors
        need = ctx.needs_input_grad
        if gy is None:  # only the sum was used: the add's gradient
            return gs, gs, None, None, None
        if is_grad_enabled():  # create_graph: differentiable tensor ops
            n = s.shape[-1]
            dx, dw, db = LayerNorm.formula(s.reshape(-1, n), weight, gy.reshape(-1, n), ctx.eps)
            dx = dx.reshape(s.shape)
            dx = dx if gs is None else dx + gs
        else:
            gs = None if gs is None else gs.contiguous()
            dx, dw, db = run("add_layer_norm_backward", gy.contiguous(), gs, s, weight, mean, rstd)
        return (dx if need[0] else None, dx if need[1] else None, dw if need[2] else None,
                db if need[3] else None, None)


class RMSNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        y, rstd = run("rms_norm_forward", x, weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, rstd = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: dx = rstd (gw - xhat mean(gw xhat)), xhat = x rstd, gw = g w
            rstd = ((x * x).mean(1, keepdim=True) + ctx.eps).rsqrt()
            xhat = x * rstd
            gw = g if weight is None else g * weight
            return (gw - xhat * (gw * xhat).mean(1, keepdim=True)) * rstd, (g * xhat).sum(0), None
        dx, dw = run("rms_norm_backward", g.contiguous(), x, weight, rstd)
        need = ctx.needs_input_grad
        return dx if need[0] else None, dw if need[1] else None, None


def _normalized_shape(normalized_shape) -> tuple:
    if isinstance(normalized_shape, int):
        return (normalized_shape,)
    return tuple(int(s) for s in normalized_shape)


def _rows(input: Tensor, normalized_shape, weight, bias, name: str):
    """input as (rows, N) plus weight/bias as (N,) in input's dtype, after checking the shapes."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{name}(): expected a floating point input, got dtype {input.dtype}")
    shape = _normalized_shape(normalized_shape)
    k = len(shape)
    if k == 0:
        raise RuntimeError(f"{name}: normalized_shape must have at least one dimension, got {list(shape)}")
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(str(s) for s in shape)}], but got input of "
                           f"size{list(input.shape)}")
    n = 1
    for s in shape:
        n *= s
    params = []
    for pname, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            if tuple(p.shape) != shape:
                raise RuntimeError(f"Expected {pname} to be of same shape as normalized_shape, but got "
                                   f"{pname} of shape {list(p.shape)} and normalized_shape = {list(shape)}")
            if p.dtype is not input.dtype:
                p = p.to(input.dtype)
            p = p.reshape(n).contiguous()
        params.append(p)
    rows = 1
    for s in input.shape[:input.ndim - k]:
        rows *= s
    return input.reshape(rows, n).contiguous(), params[0], params[1]  # kernels take contiguous rows


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the last len(normalized_shape) dims to zero mean and unit (biased) variance,
    then scale by `weight` and shift by `bias` (both of shape normalized_shape, optional)."""
    x, w, b = _rows(input, normalized_shape, weight, bias, "layer_norm")
    return LayerNorm.apply(x, w, b, float(eps)).reshape(input.shape)


def add_layer_norm(input: Tensor, residual: Tensor, normalized_shape, weight: Tensor | None = None,
                   bias: Tensor | None = None, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """(layer_norm(s), s) with s = input + residual: a pre-LN block's residual add and the next
    norm in one kernel (flash-attn's layer_norm_fn(x, w, b, residual, prenorm=True) returns the
    same pair). One fused kernel when both are cpu tensors of one shape and dtype normalised over
    their last dim with weight and bias both given or both absent; otherwise the add and
    layer_norm ops, with the same results."""
    shape = _normalized_shape(normalized_shape)
    if (isinstance(input, Tensor) and isinstance(residual, Tensor) and input.device.type == "cpu"
            and residual.device is input.device and input.shape == residual.shape and input.ndim >= 1
            and input.dtype is residual.dtype and input.dtype.is_floating_point
            and shape == (input.shape[-1],) and (weight is None) == (bias is None)
            and all(p is None or (p.shape == shape and p.dtype is input.dtype and p.device is input.device)
                    for p in (weight, bias))):
        return AddLayerNorm.apply(input.contiguous(), residual.contiguous(), weight, bias, float(eps))
    s = input + residual
    return layer_norm(s, normalized_shape, weight, bias, eps), s


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last len(normalized_shape) dims; eps=None uses
    the machine epsilon of the compute dtype (float32 for half types), as PyTorch does."""
    x, w, _ = _rows(input, normalized_shape, weight, None, "rms_norm")
    if eps is None:
        compute = input.dtype if input.dtype in (_dt.float32, _dt.float64) else _dt.float32
        eps = float(np.finfo(compute.np).eps)
    return RMSNorm.apply(x, w, float(eps)).reshape(input.shape)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Split the C channels of (N, C, *) into num_groups groups; normalise each (sample, group) over
    its channels and spatial positions, then apply per-channel weight and bias."""
    if not isinstance(input, Tensor):
        raise TypeError(f"group_norm(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim} "
                           f"(shape {tuple(input.shape)})")
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got "
                           f"input of shape {list(input.shape)} and num_groups={num_groups}")
    for pname, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise RuntimeError(f"Expected {pname} to be a vector of size equal to the number of channels in "
                               f"input, "
                               f"but got {pname} of shape {list(p.shape)} and input of shape "
                               f"{list(input.shape)}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"group_norm(): expected a floating point input, got dtype {input.dtype}")
    per_group = input.numel() // max(n * num_groups, 1)
    x = input.reshape(n * num_groups, per_group).contiguous()
    y = LayerNorm.apply(x, None, None, float(eps)).reshape(input.shape)
    channel_shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        y = y * weight.to(input.dtype).reshape(channel_shape)
    if bias is not None:
        y = y + bias.to(input.dtype).reshape(channel_shape)
    return y
