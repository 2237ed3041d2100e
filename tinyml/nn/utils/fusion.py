"""Folding an eval-mode BatchNorm into the conv or linear layer before it (torch.nn.utils.fusion):
one layer instead of two at inference, with the same outputs up to rounding.

    bn(conv(x)) = (conv(x) - rm) / sqrt(rv + eps) * g + beta,  and conv is linear in its weight, so
    W' = W * s (per output channel),  b' = (b - rm) * s + beta,   s = g / sqrt(rv + eps)
For a transposed conv the output channels are the weight's dim 1 (transpose=True).
"""
from __future__ import annotations

import copy

from ... import ops
from ...autograd import no_grad
from ...tensor import Tensor
from ..parameter import Parameter

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights"]


def _check_eval(layer, bn) -> None:
    if layer.training or bn.training:
        raise AssertionError(f"Fusion only for eval! (training: {type(layer).__name__}={layer.training}, "
                             f"{type(bn).__name__}={bn.training}); call .eval() on both first")
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("bn.running_mean and bn.running_var must not be None (a BatchNorm built with "
                             "track_running_stats=False normalises by batch statistics and cannot be folded)")


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A new conv module (a deep copy of `conv`) computing bn(conv(x)) of the two eval-mode modules."""
    _check_eval(conv, bn)
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                    bn.eps, bn.weight, bn.bias, transpose)
    return fused


def fuse_conv_bn_weights(conv_w: Tensor, conv_b: Tensor | None, bn_rm: Tensor, bn_rv: Tensor, bn_eps: float,
                         bn_w: Tensor | None, bn_b: Tensor | None, transpose: bool = False) -> tuple:
    """(weight, bias) Parameters of the folded conv; the weight and bias keep their dtypes."""
    w_dtype = conv_w.dtype
    b_dtype = conv_b.dtype if conv_b is not None else w_dtype
    b_requires_grad = conv_b.requires_grad if conv_b is not None else False
    with no_grad():
        conv_b = conv_b if conv_b is not None else ops.zeros_like(bn_rm)
        bn_w = bn_w if bn_w is not None else ops.ones_like(bn_rm)
        bn_b = bn_b if bn_b is not None else ops.zeros_like(bn_rm)
        rsqrt = (bn_rv + bn_eps).rsqrt()
        shape = ((1, -1) if transpose else (-1, 1)) + (1,) * (conv_w.ndim - 2)
        w = (conv_w * (bn_w * rsqrt).reshape(shape)).to(w_dtype)
        b = ((conv_b - bn_rm) * rsqrt * bn_w + bn_b).to(b_dtype)
    return Parameter(w, conv_w.requires_grad), Parameter(b, b_requires_grad)


def fuse_linear_bn_eval(linear, bn):
    """A new Linear (a deep copy of `linear`) computing bn(linear(x)) for a BatchNorm1d over its
    out_features (or over 1 feature, broadcast)."""
    _check_eval(linear, bn)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise AssertionError(f"To fuse, linear.out_features == bn.num_features or bn.num_features == 1, got "
                             f"linear.out_features={linear.out_features} and "
                             f"bn.num_features={bn.num_features}")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean,
                                                      bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused


def fuse_linear_bn_weights(linear_w: Tensor, linear_b: Tensor | None, bn_rm: Tensor, bn_rv: Tensor,
                           bn_eps: float, bn_w: Tensor | None, bn_b: Tensor | None) -> tuple:
    """(weight, bias) Parameters of the folded Linear."""
    b_requires_grad = linear_b.requires_grad if linear_b is not None else False
    with no_grad():
        linear_b = linear_b if linear_b is not None else ops.zeros_like(bn_rm)
        bn_w = bn_w if bn_w is not None else ops.ones_like(bn_rm)
        bn_b = bn_b if bn_b is not None else ops.zeros_like(bn_rm)
        scale = bn_w * (bn_rv + bn_eps).rsqrt()
        w = linear_w * scale.unsqueeze(-1)
        b = (linear_b - bn_rm) * scale + bn_b
    return Parameter(w, linear_w.requires_grad), Parameter(b, b_requires_grad)
