"""Optimizer state placed at its parameter's offset in a 64-byte cache line.

numpy puts an array where malloc does (16 bytes into a line, or anywhere a multiple of 16), so the moments
of a parameter usually start at another offset in their line than the parameter itself. The fused step
(csrc/optim.cpp) runs each chunk's first elements alone up to p's next line boundary and the rest a line
at a time; arrays at p's offset then go a line at a time with it, the others split nearly every 64-byte
access over two lines. Measured (11M float32 parameters, 1 thread, docs/cpu_speed.md "Session 13: ...
AdamW line splits"): m and v at p's offset 5.6-5.8 ms a step, at malloc's offsets 6.6 ms; PyTorch's fused
step, every tensor 64-byte aligned, 4.9-5.1 ms.

    zeros_at_line_of(p)          zeros_like(p), its data at p's offset in a line (cpu, contiguous, >= 4 KiB)
    copy_at_line_of(value, p)    a copy of value placed the same way (load_state_dict's moments)
Anything else (small, strided, non-cpu) is an ordinary zeros_like / clone: the placement is speed only.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import Tensor

LINE = 64
MIN_BYTES = 4096  # smaller tensors fit in a few lines; not worth the padding


def _placed(template: np.ndarray, like: np.ndarray) -> np.ndarray:
    """An uninitialised array of template's shape and dtype whose address is like's modulo LINE."""
    buf = np.empty(template.nbytes + LINE, np.uint8)
    shift = (like.ctypes.data - buf.ctypes.data) % LINE
    return buf[shift:shift + template.nbytes].view(template.dtype).reshape(template.shape)


def _placeable(value: Tensor, param: Tensor) -> bool:
    a, p = value._data, param._data
    return (value.device.type == "cpu" and param.device.type == "cpu" and isinstance(a, np.ndarray)
            and isinstance(p, np.ndarray) and a.flags.c_contiguous and a.nbytes >= MIN_BYTES
            and p.ctypes.data % a.itemsize == 0)


def zeros_at_line_of(p: Tensor) -> Tensor:
    if not _placeable(p, p):
        return ops.zeros_like(p)
    out = _placed(p._data, p._data)
    out[...] = 0
    return Tensor._make(out, p.device)


def copy_at_line_of(value: Tensor, p: Tensor) -> Tensor:
    if not _placeable(value, p) or value.shape != p.shape:
        return value.clone()
    out = _placed(value._data, p._data)
    out[...] = value._data
    return Tensor._make(out, value.device)
