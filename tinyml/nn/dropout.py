"""Channel-wise dropout (torch.nn.functional.dropout1d / dropout2d and nn.Dropout1d / Dropout2d).

    y[n, c, ...] = x[n, c, ...] * m[n, c] / (1 - p),   m[n, c] ~ Bernoulli(1 - p)

One draw per (sample, channel), shared by every position of that channel, so whole feature maps
are zeroed (adjacent pixels are correlated; per-element dropout barely regularises convolutions).
The mask comes from tinyml's global generator (`tinyml.manual_seed` reproduces it); the identity in
eval mode. Written over other ops (a multiply by a broadcast mask): no kernel of its own.
"""
from __future__ import annotations

import warnings

from .. import ops
from ..ops.inplace import apply_inplace
from ..tensor import Tensor
from .module import Module

__all__ = ["Dropout1d", "Dropout2d", "dropout1d", "dropout2d"]


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    """Dropout of whole channels of a batched (N, C, *) input."""
    if not training or p == 0.0:
        return input
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    if p == 1.0:
        out = input * 0.0
    else:
        keep = ops.rand(mask_shape, device=input.device) >= p
        out = input * ops.where(keep, 1.0 / (1.0 - p), 0.0).to(input.dtype)
    return apply_inplace(input, out) if inplace else out


def _check(input: Tensor, p: float, fn: str) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{fn}: expected a floating point input, got dtype {input.dtype}")


_DROPOUT1D_DIMS = ("Note that dropout1d exists to provide channel-wise dropout on inputs with 1 spatial "
                   "dimension, a channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
_DROPOUT2D_DIMS = ("To retain the behavior and silence this warning, please use dropout instead. Note that "
                   "dropout2d exists to provide channel-wise dropout on inputs with 2 spatial dimensions, a "
                   "channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).")
_DROPOUT2D_3D = ("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                 "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                 "This behavior will change in a future release to interpret the input as one without a "
                 "batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                 "please switch to using dropout1d instead.")


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) with probability p, scaling the rest by 1 / (1 - p)."""
    _check(input, p, "dropout1d")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input of shape "
                           f"{list(input.shape)}. " + _DROPOUT1D_DIMS)
    if input.ndim == 3:
        return _feature_dropout(input, p, training, inplace)
    out = _feature_dropout(input.unsqueeze(0), p, training, False).squeeze(0)
    return apply_inplace(input, out) if inplace and out is not input else out


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, H, W) with probability p, scaling the rest by 1 / (1 - p). As
    PyTorch does, a 3-D input is taken as (N, C, L) (channel-wise 1-d dropout), with a warning."""
    _check(input, p, "dropout2d")
    if input.ndim < 2:
        raise RuntimeError(f"dropout2d: expected an input with a channel dimension, got shape "
                           f"{list(input.shape)}")
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and "
                      "will result in an error in a future release. " + _DROPOUT2D_DIMS, stacklevel=2)
    if input.ndim == 3:
        warnings.warn(_DROPOUT2D_3D, stacklevel=2)
    return _feature_dropout(input, p, training, inplace)


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0.0 or p > 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    """Channel-wise dropout over (N, C, L) or (C, L)."""

    def forward(self, input: Tensor) -> Tensor:
        return dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Channel-wise dropout over (N, C, H, W) (or (N, C, L), as PyTorch)."""

    def forward(self, input: Tensor) -> Tensor:
        return dropout2d(input, self.p, self.training, self.inplace)
