"""cpu kernel: clone (csrc/creation.cpp), the binding itself.

A C-contiguous copy split over tinyml's OpenMP threads once it is large (512 KiB): a copy is
memory-bound and one core does not reach the machine's copy bandwidth. The backward engine clones
each gradient a leaf cannot take as it is, so a training step clones its parameters' gradients.
The binding returns NotImplemented, without touching memory, for what it does not take (a strided
view, a subclass, an object, structured or bfloat16 dtype) and the numpy reference
(backends/reference/creation.py) runs. Registered as it is: an adapter's frame would cost about
as much as a small copy.
"""
from . import _C

__all__ = ["clone"]

clone = _C.clone
