"""The running-statistics buffers batch and instance norm share (torch's _NormBase part), in a module
of their own so that nn/instancenorm.py (which nn/functional.py imports) need not import nn/batchnorm.py
(which imports nn/functional.py)."""
from __future__ import annotations

from .. import dtypes as _dt
from .. import ops
from .module import Module


def register_running_stats(module: Module, num_features: int, track: bool, device, dtype) -> None:
    """running_mean (zeros), running_var (ones) and num_batches_tracked buffers, or None for each
    when the module does not track statistics (batch and instance norm alike, as torch's _NormBase)."""
    if track:
        module.register_buffer("running_mean", ops.zeros((num_features,), device=device, dtype=dtype))
        module.register_buffer("running_var", ops.ones((num_features,), device=device, dtype=dtype))
        module.register_buffer("num_batches_tracked", ops.zeros((), device=device, dtype=_dt.int64))
    else:
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            module.register_buffer(name, None)


def reset_running_stats(module: Module) -> None:
    if module.track_running_stats:
        module.running_mean.zero_()
        module.running_var.fill_(1)
        module.num_batches_tracked.zero_()
