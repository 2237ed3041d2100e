"""Batch normalisation layers (torch.nn's names, arguments, buffers and state_dict keys).

    BatchNorm1d (N, C) or (N, C, L); BatchNorm2d (N, C, H, W); BatchNorm3d (N, C, D, H, W):
    y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c

In training mode (mean_c, var_c) are the batch's statistics over every dim but C, and the running
statistics move towards them: running <- (1 - momentum) running + momentum batch (the variance
unbiased), or with momentum=None the cumulative average, momentum = 1 / num_batches_tracked. In eval
mode the running statistics normalise. track_running_stats=False keeps no buffers and always uses
the batch's statistics; affine=True with bias=False keeps the weight only. Buffers: running_mean
(zeros), running_var (ones), num_batches_tracked
(int64 0-d), so a PyTorch state_dict loads as it is; one without num_batches_tracked (PyTorch
before 0.4.1) loads with the counter left as it is, as PyTorch does.
"""
from __future__ import annotations

from .. import ops
from ..tensor import Tensor
from . import functional as F
from . import init
from ._running_stats import register_running_stats, reset_running_stats
from .module import Module
from .parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _BatchNorm(Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ops.ones((num_features,), device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(ops.zeros((num_features,), device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        register_running_stats(self, num_features, track_running_stats, device, dtype)

    def reset_running_stats(self) -> None:
        reset_running_stats(self)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError  # each subclass names the dims it takes

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked.item()) if self.momentum is None else self.momentum
        # eval without running statistics (track_running_stats=False) normalises by the batch's
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats  # buffers to read (eval) or update (training)
        return F.batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch, factor, self.eps)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and self.num_batches_tracked is not None and key not in state_dict:
            # an old checkpoint without the counter: keep ours (a copy, so the caller's dict is untouched)
            state_dict = dict(state_dict)
            state_dict[key] = self.num_batches_tracked.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input of shape "
                             f"{list(input.shape)})")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input of shape {list(input.shape)})")


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over (N, C, D, H, W)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim != 5:
            raise ValueError(f"expected 5D input (got {input.ndim}D input of shape {list(input.shape)})")
