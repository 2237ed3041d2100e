"""Optimizer: parameter groups, per-parameter state, and PyTorch's state_dict format.

    opt = AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-4)
    opt.state_dict() == {"state": {0: {"step": tensor(3.), "exp_avg": ..., ...}, ...},
                         "param_groups": [{"lr": 3e-4, ..., "params": [0, 1, ...]}, ...]}

State is keyed by the parameter tensor itself in memory and by the parameter's index (counted
across groups, in order) in state_dict, so a checkpoint loads into a freshly built model.
Subclasses implement `step`; they update parameters through the fused optimizer kernels, one
call per (device, dtype) bucket of a group, which write the parameters' storage in place.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from .. import autograd
from ..tensor import Tensor
from ._line_aligned import copy_at_line_of

__all__ = ["Optimizer", "required"]


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    _complex_params = False  # True where the update is right for complex parameters as it is (SGD)

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or "
                            "dicts, but got a Tensor")
        if isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list "
                            "instead.")
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list "
                            "instead.")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if p.grad_fn is not None:
                raise ValueError(f"can't optimize a non-leaf Tensor (shape {tuple(p.shape)})")
            if p.dtype.is_complex and not self._complex_params:
                # torch's adaptive optimizers update view_as_real(p); these kernels would square g as a
                # complex number, so they refuse instead of computing something else
                raise TypeError(f"{type(self).__name__}: complex parameters are not supported (a parameter "
                                f"of shape {tuple(p.shape)} is {p.dtype}); keep it as a real (..., 2) tensor "
                                "and view_as_complex it in forward, or use SGD")
        group = dict(param_group)
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter "
                                 f"{name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the `.grad` of every parameter in every group: `tinyml.autograd.zero_grad`."""
        autograd.zero_grad((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure: Callable | None = None):
        raise NotImplementedError

    # ---- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {param index: {name: value}}, "param_groups": [group with "params" as indices]}
        (torch's format). Tensors are returned by reference, as torch does."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state. Floating state tensors are copied to each parameter's
        dtype and device ("step" stays as saved)."""
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups "
                             f"({len(saved_groups)}) than the optimizer ({len(self.param_groups)})")
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size "
                                 f"of optimizer's group: group {i} has {len(s['params'])} params in the "
                                 f"checkpoint, "
                                 f"{len(g['params'])} in the optimizer")
        id_map = {}
        for g, s in zip(self.param_groups, saved_groups):
            for saved_idx, p in zip(s["params"], g["params"]):
                id_map[saved_idx] = p
        self.state = defaultdict(dict)
        for key, values in state_dict["state"].items():
            key = int(key)  # a checkpoint that went through JSON may have string keys
            if key not in id_map:
                continue
            p = id_map[key]
            self.state[p] = {name: _cast_state(name, v, p) for name, v in values.items()}
        for g, s in zip(self.param_groups, saved_groups):
            s["params"] = g["params"]
            if "betas" in s and isinstance(s["betas"], list):
                s["betas"] = tuple(s["betas"])
            g.clear()
            g.update(s)

    def __getstate__(self) -> dict:
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _cast_state(name: str, value, param: Tensor):
    if not isinstance(value, Tensor):
        return value
    if name == "step":
        return value.detach().clone()
    out = value.detach()
    if out.dtype.is_floating_point and out.dtype is not param.dtype:
        out = out.to(param.dtype)
    if out.device != param.device:
        out = out.to(param.device)
    if out is value or out._data is value._data:  # a copy of its own, at the parameter's line offset
        return copy_at_line_of(out, param)
    return out


def _bucket(params: list[Tensor], extra=None) -> dict:
    """Group parameters by (device, dtype[, extra(p)]): each bucket is one fused kernel call."""
    buckets: dict = {}
    for p in params:
        key = (p.device.type, p.device.index, p.dtype) if extra is None else \
            (p.device.type, p.device.index, p.dtype, extra(p))
        buckets.setdefault(key, []).append(p)
    return buckets


def _check_grad(p: Tensor) -> Tensor:
    g = p.grad
    if g.dtype is not p.dtype or g.shape != p.shape or g.device != p.device:
        raise RuntimeError(f"gradient of dtype {g.dtype}, shape {tuple(g.shape)} on {g.device} does not "
                           f"match its parameter of dtype {p.dtype}, shape {tuple(p.shape)} on {p.device}")
    return g
