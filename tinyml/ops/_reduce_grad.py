"""Reduction gradients as tensor ops, for backward passes that record a graph (create_graph=True).

The reductions' backward normally runs one fused kernel (amax_backward, norm_backward, ...),
whose result is a constant to autograd. When grad mode is on inside backward, the gradient must
itself be differentiable, in g and in x, so these formulas build it from differentiable ops
instead. `y` here is the forward output recomputed with grad on (a saved output is detached),
and `y`, `g` come in keepdim form. Divisions use a safe denominator inside `where`, so that the
branch not taken cannot leak inf * 0 = NaN into higher derivatives. Sums and `any` are Tensor
methods here: their module, reduce.py, imports this one.
"""
from __future__ import annotations

from ..tensor import Tensor
from . import creation, elementwise, pointwise, unary


def _safe(y: Tensor, bad: Tensor) -> Tensor:
    return pointwise.where(bad, 1.0, y)


def amax_grad(x: Tensor, y: Tensor, g: Tensor, dims: tuple) -> Tensor:
    """g [x == y] / #ties (NaN equal to a NaN result)."""
    mask = x == y
    if x.dtype.is_floating_point:
        mask = elementwise.logical_or(mask, elementwise.logical_and(unary.isnan(x), unary.isnan(y)))
    count = mask.sum(dims, keepdim=True)
    return pointwise.where(mask, g / count, 0.0)


def value_selecting_grad(g: Tensor, indices: Tensor, dim: int, in_shape: tuple) -> Tensor:
    """g placed at `indices` along dim: a one-hot mask from comparing positions with indices."""
    if not in_shape:
        return g
    shape = [1] * len(in_shape)
    shape[dim] = in_shape[dim]
    positions = creation.arange(in_shape[dim], device=g.device).reshape(shape)
    return pointwise.where(positions == indices, g, 0.0)


def norm_grad(x: Tensor, y: Tensor, g: Tensor, p: float, dims: tuple) -> Tensor:
    """The `norm_backward` kernel's formulas, differentiable; 0 where the norm is 0."""
    if p == 0:
        return creation.zeros_like(x)
    if p == 1:
        return unary.sign(x) * g
    zero_norm = y == 0
    if p == 2:
        return x * pointwise.where(zero_norm, 0.0, g / _safe(y, zero_norm))
    if p in (float("inf"), float("-inf")):
        mask = unary.abs(x) == y
        return unary.sign(x) * pointwise.where(mask, g / mask.sum(dims, keepdim=True), 0.0)
    if p < 1:
        zero_x = x == 0
        scaled = pointwise.where(zero_x, 0.0, unary.sign(x) * unary.abs(_safe(x, zero_x)) ** (p - 1))
        return scaled * g * y ** (1 - p)
    scaled = unary.sign(x) * unary.abs(x) ** (p - 1)
    return scaled * pointwise.where(zero_norm, 0.0, g / _safe(y, zero_norm) ** (p - 1))


def refuse_zeros(x: Tensor, name: str) -> None:
    if bool((x == 0).any()):
        raise NotImplementedError(f"{name}: the double backward (create_graph=True) through an input with "
                                  f"zeros is not implemented (input shape {tuple(x.shape)}); the first-order "
                                  f"gradient "
                                  "is exact with zeros")


def prod_grad(x: Tensor, y: Tensor, g: Tensor) -> Tensor:
    """g y / x (x without zeros)."""
    refuse_zeros(x, "prod")
    return g * y / x
