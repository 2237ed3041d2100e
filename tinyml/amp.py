"""Mixed precision: `tinyml.autocast(device_type, dtype)` runs matmuls and attention in a lower
precision while parameters stay float32 (the master weights).

    with tinyml.autocast("cuda", dtype=tinyml.bfloat16):
        loss = model(x)          # matmul / linear / attention inputs cast to bf16, fp32 accumulation
    loss.backward()              # gradients flow back through the casts: param.grad is float32

Inside the block, ops that benefit (matmul, linear, scaled_dot_product_attention, conv) cast
their floating inputs to the autocast dtype; everything else (norms, softmax, losses) runs in
the dtype it is given, so reductions stay float32 as in PyTorch's autocast lists.
"""
from __future__ import annotations

import functools

from . import dtypes as _dt

_enabled: dict[str, _dt.dtype | None] = {"cpu": None, "cuda": None}


class autocast:
    """Context manager / decorator enabling autocast for one device type."""

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True):
        if device_type not in _enabled:
            raise ValueError(f"autocast: unknown device_type {device_type!r}; expected 'cpu' or 'cuda'")
        dtype = _dt.bfloat16 if dtype is None else _dt.as_dtype(dtype)
        if dtype not in (_dt.bfloat16, _dt.float16):
            raise ValueError(f"autocast: dtype must be bfloat16 or float16, got {dtype}")
        self.device_type, self.dtype, self.enabled = device_type, dtype, enabled

    def __enter__(self):
        self.prev = _enabled[self.device_type]
        _enabled[self.device_type] = self.dtype if self.enabled else None
        return self

    def __exit__(self, *exc):
        _enabled[self.device_type] = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def autocast_dtype(device_type: str) -> _dt.dtype | None:
    """The dtype autocast asks for on this device type, or None when autocast is off."""
    return _enabled.get(device_type)


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    return _enabled.get(device_type) is not None


def cast_inputs(*tensors):
    """The tensors converted to the autocast dtype of their device (floating ones only); unchanged
    when autocast is off."""
    if not tensors or tensors[0] is None:
        return tensors
    dt = _enabled.get(tensors[0].device.type)
    if dt is None:
        return tensors
    return tuple(t.to(dt) if t is not None and t.dtype.is_floating_point and t.dtype is not dt else t
                 for t in tensors)
