"""Dropout, written over other ops (no kernel of its own):

    dropout(x) = x * mask / (1 - p),  mask ~ Bernoulli(1 - p) from tinyml's seeded generator
"""
from __future__ import annotations

from ..tensor import Tensor
from .creation import rand
from .inplace import apply_inplace
from .pointwise import where

__all__ = ["dropout"]


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
