"""Devices: `tinyml.device("cpu")`, `tinyml.device("cuda:0")`. Dispatch keys on `device.type`."""
from __future__ import annotations

_TYPES = ("cpu", "cuda")


class device:
    """Interned: equal devices are the same object, so hot paths may compare with `is`."""

    __slots__ = ("type", "index")
    _interned: dict = {}

    def __new__(cls, spec: str | device = "cpu", index: int | None = None):
        if isinstance(spec, device):
            return spec
        key = (spec, index)
        obj = cls._interned.get(key)
        if obj is None:
            obj = object.__new__(cls)
            obj._parse(spec, index)
            obj = cls._interned.setdefault((obj.type, obj.index), obj)
            cls._interned[key] = obj
        return obj

    def _parse(self, spec, index) -> None:
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, idx = spec.partition(":")
        if kind not in _TYPES:
            raise ValueError(f"unknown device {spec!r}; expected one of {', '.join(_TYPES)} (e.g. 'cuda:0')")
        if idx:
            if not idx.isdigit():
                raise ValueError(f"device {spec!r}: the index after ':' must be a non-negative integer")
            if index is not None:
                raise ValueError(f"device {spec!r}: the index is given twice (in the string and as index={index})")
            index = int(idx)
        if index is not None and (type(index) is not int or index < 0):
            raise ValueError(f"device {spec!r}: index must be a non-negative integer, got {index!r}")
        if kind == "cpu" and index not in (None, 0):
            raise ValueError(f"device {spec!r}" + ("" if idx else f" index {index}") +
                             ": tinyml has one cpu device, 'cpu' (or 'cpu:0')")
        self.type = kind
        self.index = None if kind == "cpu" else (0 if index is None else index)

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and (self.index or 0) == (other.index or 0)

    def __reduce__(self):
        return (device, (str(self),))  # unpickling goes through __new__, so it stays interned

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


CPU = device("cpu")


def as_device(d) -> device:
    if isinstance(d, device):
        return d
    if d is None:
        return CPU
    if isinstance(d, int):
        return device("cuda", d)
    return CPU if d == "cpu" else device(d)
