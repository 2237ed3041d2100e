"""Padding layers (torch.nn.ZeroPad2d, ConstantPad1d, ReflectionPad2d, ReplicationPad1d, CircularPad2d,
... in 1, 2 and 3 dimensions): each is F.pad with its mode over the last n dims. `padding` is an int
(the same on every side) or a 2n-tuple (left, right, top, bottom, front, back), as in PyTorch."""
from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .module import Module


class _PadNd(Module):
    mode = "constant"
    dims = 1

    def __init__(self, padding, value: float | None = None) -> None:
        super().__init__()
        n = 2 * self.dims
        if isinstance(padding, int):
            padding = (padding,) * n
        padding = tuple(padding)
        if len(padding) != n or not all(isinstance(p, int) for p in padding):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple of {n} ints, got "
                             f"{padding!r}")
        self.padding, self.value = padding, value

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, self.mode, self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float) -> None:
        super().__init__(padding, float(value))

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_PadNd):
    def __init__(self, padding) -> None:
        super().__init__(padding, 0.0)


def _layer(name: str, base: type, mode: str, dims: int) -> type:
    doc = f"F.pad(input, padding, mode={mode!r}) over the last {dims} dim{'s' if dims > 1 else ''}."
    return type(name, (base,), {"mode": mode, "dims": dims, "__doc__": doc, "__module__": __name__})


ZeroPad1d, ZeroPad2d, ZeroPad3d = (_layer(f"ZeroPad{n}d", _ZeroPadNd, "constant", n) for n in (1, 2, 3))
ConstantPad1d, ConstantPad2d, ConstantPad3d = (_layer(f"ConstantPad{n}d", _ConstantPadNd, "constant", n)
                                               for n in (1, 2, 3))
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = (_layer(f"ReflectionPad{n}d", _PadNd, "reflect", n)
                                                     for n in (1, 2, 3))
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = (_layer(f"ReplicationPad{n}d", _PadNd, "replicate", n)
                                                        for n in (1, 2, 3))
CircularPad1d, CircularPad2d, CircularPad3d = (_layer(f"CircularPad{n}d", _PadNd, "circular", n)
                                               for n in (1, 2, 3))
