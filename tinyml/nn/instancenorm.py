"""F.instance_norm and nn.InstanceNorm1d/2d/3d: each (sample, channel) of (N, C, *) normalised over its
own positions, y = (x - mean) / sqrt(var + eps) * weight_c + bias_c (biased variance).

As PyTorch does it: (N, C, *) is viewed as one batch of N C channels (1, N C, *) and run through
batch_norm, with the running statistics repeated N times going in and averaged over N coming out.
Defaults as PyTorch: affine=False (affine=True with bias=False keeps the weight only),
track_running_stats=False; with track_running_stats=True, eval mode normalises by the running
statistics, which training moves by `momentum` (None: not at all, and num_batches_tracked stays 0,
as in PyTorch's InstanceNorm)."""
from __future__ import annotations

from .. import ops
from ..autograd import no_grad
from ..ops.batch_norm import batch_norm
from ..tensor import Tensor
from . import init
from ._running_stats import register_running_stats, reset_running_stats
from .module import Module
from .parameter import Parameter


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalisation of (N, C, *) (torch.nn.functional.instance_norm)."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *) with at least one spatial "
                         f"dim, got shape {tuple(input.shape)}")
    n, c = input.shape[:2]
    if not use_input_stats and (running_mean is None or running_var is None):
        raise ValueError("instance_norm: Expected running_mean and running_var to be defined when "
                         "use_input_stats is false")
    repeat = (lambda t: None if t is None else t.repeat(n))  # noqa: E731
    rm, rv = repeat(running_mean), repeat(running_var)
    y = batch_norm(input.reshape(1, n * c, *input.shape[2:]), rm, rv, repeat(weight), repeat(bias),
                   use_input_stats, momentum, eps)
    if use_input_stats:
        with no_grad():  # the per-sample statistics batch_norm folded in, averaged back over the batch
            if running_mean is not None:
                running_mean.copy_(rm.reshape(n, c).mean(0))
            if running_var is not None:
                running_var.copy_(rv.reshape(n, c).mean(0))
    return y.reshape(input.shape)


class _InstanceNorm(Module):
    spatial = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", Parameter(ops.ones((num_features,), device=device, dtype=dtype))
                                if affine else None)
        self.register_parameter("bias", Parameter(ops.zeros((num_features,), device=device, dtype=dtype))
                                if affine and bias else None)
        register_running_stats(self, num_features, track_running_stats, device, dtype)

    def reset_parameters(self) -> None:
        reset_running_stats(self)
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (self.spatial + 1, self.spatial + 2):
            raise ValueError(f"{type(self).__name__}: expected {self.spatial + 1}D (unbatched) or "
                             f"{self.spatial + 2}D input, got input of shape {tuple(input.shape)}")
        unbatched = input.ndim == self.spatial + 1
        x = input.unsqueeze(0) if unbatched else input
        if x.shape[1] != self.num_features and self.affine:
            raise ValueError(f"{type(self).__name__}: expected input with {self.num_features} channels "
                             f"(num_features), got input of shape {tuple(input.shape)}")
        # As torch's InstanceNorm: momentum=None is 0 (the running statistics stay put), and
        # num_batches_tracked (kept for state_dict compatibility) is never incremented.
        factor = 0.0 if self.momentum is None else self.momentum
        y = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          self.training or not self.track_running_stats, factor, self.eps)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    spatial = 1


class InstanceNorm2d(_InstanceNorm):
    spatial = 2


class InstanceNorm3d(_InstanceNorm):
    spatial = 3
