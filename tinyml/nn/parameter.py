"""Parameter: a leaf Tensor that a Module registers and an optimizer updates.

Why not a Tensor subclass? The engine and every op test `type(x) is Tensor` on their hot path
(Function.apply, run, prepare, the backward walk); a subclass would fail those checks or make
them slower. A Parameter is therefore a plain `Tensor` carrying a flag in its `_is_param` slot,
and `isinstance(p, nn.Parameter)` reads the flag through the metaclass:

    w = nn.Parameter(tinyml.randn(3, 4))     # shares storage with the argument, requires grad
    isinstance(w, nn.Parameter)              # True
    isinstance(w.detach(), nn.Parameter)     # False: detach gives a plain tensor, as in torch
"""
from __future__ import annotations

from ..tensor import Tensor

__all__ = ["Buffer", "Parameter", "is_parameter"]


def is_parameter(obj) -> bool:
    return type(obj) is Tensor and getattr(obj, "_is_param", False)


class _ParameterMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return is_parameter(obj)

    def __subclasscheck__(cls, sub) -> bool:
        return sub is cls


class Parameter(metaclass=_ParameterMeta):
    """`Parameter(data, requires_grad=True)`: a new leaf tensor over `data`'s storage, flagged as
    a parameter (torch.nn.Parameter). Returns a `tinyml.Tensor`."""

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Tensor:
        if data is None:
            from ..ops.creation import empty

            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: expected a Tensor as data, got {type(data).__name__}")
        p = Tensor._make(data._data, data.device)
        p._version = data._version  # same storage, so in-place writes through either are seen by both
        p._is_param = True
        if requires_grad:
            p.requires_grad_(True)
        return p


class Buffer:
    """`self.x = nn.Buffer(data, persistent=True)` in a Module registers `data` as a buffer
    (torch.nn.Buffer); the attribute then holds the tensor itself."""

    def __new__(cls, data: Tensor, persistent: bool = True):
        if not isinstance(data, Tensor):
            raise TypeError(f"Buffer: expected a Tensor, got {type(data).__name__}")
        return _BufferRequest(data, persistent)


class _BufferRequest:
    __slots__ = ("persistent", "tensor")

    def __init__(self, tensor: Tensor, persistent: bool):
        self.tensor, self.persistent = tensor, persistent
