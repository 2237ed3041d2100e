"""tinyml.Size: the type of `Tensor.shape` and `Tensor.size()`, a tuple of ints as torch.Size is.

    x = tinyml.zeros(2, 3)
    x.shape                # tinyml.Size([2, 3])
    x.shape.numel()        # 6
    x.shape[1:]            # tinyml.Size([3]): slices, + and * keep the type
    x.shape == (2, 3)      # True: it is a tuple
    f"{x.shape}"           # '(2, 3)': str() keeps the tuple form (torch prints torch.Size([2, 3]))
"""
from __future__ import annotations

import math

__all__ = ["Size"]


class Size(tuple):
    """A tuple subclass; numel() is the product of the sizes (1 for a 0-d shape)."""

    __slots__ = ()

    def __new__(cls, sizes=()):
        sizes = tuple(sizes)
        for s in sizes:
            if not isinstance(s, int) and not hasattr(s, "__index__"):
                raise TypeError(f"tinyml.Size() takes an iterable of 'int' (item {len(sizes)} is "
                                f"'{type(s).__name__}')")
        return tuple.__new__(cls, (int(s) for s in sizes))

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self) -> str:
        return f"tinyml.Size({list(self)})"

    # str() and f-strings keep the plain tuple form, "(2, 3)": error messages across tinyml format
    # shapes with f"{x.shape}" and name them as tuples; repr() is torch's form
    __str__ = tuple.__repr__

    def __getitem__(self, key):
        out = tuple.__getitem__(self, key)
        return tuple.__new__(Size, out) if isinstance(key, slice) else out

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return tuple.__new__(Size, tuple.__add__(other, self))

    def __mul__(self, n):
        return tuple.__new__(Size, tuple.__mul__(self, n))

    __rmul__ = __mul__

    def __reduce__(self):
        return (Size, (tuple(self),))
