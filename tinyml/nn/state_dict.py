"""Module.state_dict / load_state_dict (a mixin of nn.Module, kept in its own file).

    state_dict():       OrderedDict of dotted name -> tensor: every parameter, then every persistent
                        buffer, module by module depth first (torch's order and names)
    load_state_dict():  copies values in place (converting dtype), or with assign=True replaces
                        the tensors; missing/unexpected keys are returned, and raised when strict;
                        a shape mismatch always raises, naming both shapes
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

from ..autograd import no_grad
from ..tensor import Tensor
from .parameter import Parameter

__all__ = ["StateDictMixin"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class StateDictMixin:
    """The checkpoint half of nn.Module; relies on its `_parameters`, `_buffers`,
    `_non_persistent_buffers_set` and `_modules`."""

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name, detached (sharing storage) unless
        keep_vars. A parameter shared by two modules appears under both names, as in torch."""
        if destination is None:
            destination = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Copy this module's own entries from `state_dict` (override to convert old formats)."""
        persistent = {k: v for k, v in self._buffers.items() if k not in self._non_persistent_buffers_set}
        local = {k: v for k, v in list(self._parameters.items()) + list(persistent.items()) if v is not None}
        assign = local_metadata.get("assign", False)
        for name, current in local.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                error_msgs.append(f'While copying the parameter named "{key}", expected a Tensor from checkpoint '
                                  f"but received {type(value).__name__}")
                continue
            if tuple(value.shape) != tuple(current.shape):
                error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} from "
                                  f"checkpoint, the shape in current model is {tuple(current.shape)}.")
                continue
            try:
                if assign:
                    if name in self._parameters:
                        new = Parameter(value.detach(), requires_grad=current.requires_grad)
                        self._parameters[name] = new
                    else:
                        self._buffers[name] = value
                else:
                    with no_grad():
                        current.copy_(value)
            except Exception as e:  # a dtype/device copy the backend refuses: report it with the key
                error_msgs.append(f'While copying the parameter named "{key}", whose dimensions in the model are '
                                  f"{tuple(current.shape)} and whose dimensions in the checkpoint are "
                                  f"{tuple(value.shape)}, an exception occurred: {e}")
        if strict:
            for key in state_dict:
                if key.startswith(prefix):
                    head = key[len(prefix):].split(".", 1)
                    if len(head) > 1:
                        if head[0] not in self._modules:
                            unexpected_keys.append(key)
                    elif head[0] not in local:
                        unexpected_keys.append(key)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False) -> _IncompatibleKeys:
        """Copy parameters and buffers from `state_dict` in place. Returns (missing_keys,
        unexpected_keys); raises RuntimeError listing them when strict, and always on a shape
        mismatch (naming both shapes)."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        missing: list[str] = []
        unexpected: list[str] = []
        errors: list[str] = []
        meta = {"assign": assign}
        stack = [(self, "")]
        while stack:
            module, prefix = stack.pop()
            module._load_from_state_dict(state_dict, prefix, meta, True, missing, unexpected, errors)
            for name, child in reversed(list(module._modules.items())):
                if child is not None:
                    stack.append((child, prefix + name + "."))
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)
