"""tinyml.save / tinyml.load: checkpoints as safetensors files.

A flat dict of name -> Tensor (a model's state_dict) is written as a plain safetensors file,
readable by `safetensors.torch.load_file`, Hugging Face and any other framework, every dtype
included (bfloat16 through ml_dtypes):

    tinyml.save(model.state_dict(), "model.safetensors")
    model.load_state_dict(tinyml.load("model.safetensors"))

Anything else built from dicts, lists, tuples, tensors, numbers, strings, bools and None (an
optimizer's or a scheduler's state_dict, a training checkpoint bundling several) is stored in
the same format: each tensor under its dotted path ("optimizer.state.0.exp_avg"), and the
structure as JSON in the file's metadata under "tinyml.structure", where a tensor is
{"__tensor__": key}, a tuple {"__tuple__": [...]}, a dict {"__dict__": [[key, value], ...]}
(keys may be ints, as in optimizer state) and a Counter {"__counter__": [[key, count], ...]}.
Other tools see the tensors; tinyml.load rebuilds the object.
"""
from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict

import numpy as np

from .tensor import Tensor

__all__ = ["load", "save"]

_STRUCTURE_KEY = "tinyml.structure"


def _host(t: Tensor) -> np.ndarray:
    arr = t.detach().cpu().numpy()
    # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    return arr if arr.flags["C_CONTIGUOUS"] else arr.copy(order="C")


def _is_flat_state_dict(obj) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _encode(obj, path: str, tensors: dict, seen: dict):
    if isinstance(obj, Tensor):
        key = seen.get(id(obj))
        if key is None:  # a tensor referenced twice is stored once
            key = path or "tensor"
            while key in tensors:
                key += "_"
            tensors[key] = _host(obj)
            seen[id(obj)] = key
        return {"__tensor__": key}
    if isinstance(obj, Counter):
        return {"__counter__": [[_key(k, path), v] for k, v in obj.items()]}
    if isinstance(obj, dict):
        return {"__dict__": [[_key(k, path), _encode(v, _join(path, k), tensors, seen)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, _join(path, i), tensors, seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, _join(path, i), tensors, seen) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"tinyml.save: cannot store an object of type {type(obj).__name__} at '{path or '<root>'}'; "
                    "supported: Tensor, dict, list, tuple, int, float, str, bool, None")


def _key(k, path: str):
    if k is None or isinstance(k, (bool, int, float, str)):
        return k
    raise TypeError(f"tinyml.save: dict keys must be str, int, float, bool or None, got {type(k).__name__} at "
                    f"'{path or '<root>'}'")


def _join(path: str, k) -> str:
    return f"{path}.{k}" if path else str(k)


def _decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__counter__" in obj:
            return Counter({k: v for k, v in obj["__counter__"]})
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
        raise ValueError(f"tinyml.load: unknown entry in the stored structure: {sorted(obj)}")
    return obj


def save(obj, f, metadata: dict[str, str] | None = None) -> None:
    """Write `obj` (a state_dict, or a nested structure of them) to the safetensors file `f`.
    `metadata` adds string entries to the file header."""
    from safetensors.numpy import save_file

    meta = {"format": "pt"}  # what safetensors.torch writes: other loaders expect torch-layout tensors
    if metadata:
        meta.update({str(k): str(v) for k, v in metadata.items()})
    if _is_flat_state_dict(obj):
        tensors: dict = {}
        seen: dict = {}
        for k, v in obj.items():
            # tied weights (one tensor under two names) are written under each name, as torch does
            tensors[k] = _host(v)
            seen.setdefault(id(v), k)
    else:
        tensors, seen = {}, {}
        meta[_STRUCTURE_KEY] = json.dumps(_encode(obj, "", tensors, seen))
    save_file(tensors, os.fspath(f), metadata=meta)


def load(f, map_location=None, *, device=None, weights_only: bool = True) -> object:
    """Read a file written by `save` (or any safetensors file: a dict of name -> Tensor in file
    order). Tensors are copied into memory owned by tinyml, on `device` (or map_location) or cpu."""
    from safetensors import safe_open

    path = os.fspath(f)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tinyml.load: no such file: '{path}'")
    dev = device if device is not None else map_location
    try:
        with safe_open(path, framework="numpy") as handle:
            meta = handle.metadata() or {}
            tensors = OrderedDict((k, _to_tensor(handle.get_tensor(k), dev)) for k in handle.keys())
    except Exception as e:  # a corrupt or foreign file: say which
        raise RuntimeError(f"tinyml.load: '{path}' is not a readable safetensors file ({e})") from e
    structure = meta.get(_STRUCTURE_KEY)
    if structure is None:
        return tensors
    return _decode(json.loads(structure), tensors)


def _to_tensor(arr: np.ndarray, dev) -> Tensor:
    t = Tensor._make(np.array(arr, copy=True))  # the file's buffer is mapped read-only
    return t if dev is None else t.to(dev)
