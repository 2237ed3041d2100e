"""Hugging Face format folders on disk: config.json + model.safetensors (or a sharded index).

    model = tinyml.models.from_pretrained("path/to/folder")  # any registered architecture
    model.save_pretrained("out/")                            # transformers' from_pretrained reads it back

This file knows folders, not models: each architecture brings an `HFAdapter` (config.json <-> the
tinyml config, checkpoint names <-> module names, both ways) and registers it from the model's
own file, e.g. models/transformer/gpt.py ends with `register_architecture(HFAdapter("GPT2LMHeadModel",
...))`. Registered today: GPT2LMHeadModel, LlamaForCausalLM, BertForMaskedLM, MambaForCausalLM.
Nothing is downloaded: a hub name that is not a folder gets an error saying so.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tinyml
from tinyml.io import read_safetensors, write_safetensors


# ---- the registry ------------------------------------------------------------------------------
def same_names(cfg, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The weight mapping of an architecture whose module names are transformers' own."""
    return dict(weights)


@dataclass(frozen=True)
class HFAdapter:
    """How one transformers architecture maps onto a tinyml model, in both directions.

    architecture     the class name config.json lists under "architectures" ("GPT2LMHeadModel")
    model_type       config.json's "model_type", used when "architectures" is absent ("gpt2")
    model_class      the tinyml Module, built as model_class(config_class(**kwargs))
    config_class     the tinyml config dataclass
    config_from_hf   config.json (read its keys with config_value) -> config_class keyword arguments;
                     raises for options the model does not implement
    config_to_hf     a tinyml config -> the config.json keys besides architectures, dtype, model_type
    weights_from_hf  (config, {checkpoint name: array}) -> {state_dict name: array}: renames,
                     transposes, drops buffers and tied copies
    weights_to_hf    (config, {state_dict name: array}) -> {checkpoint name: array}
    """

    architecture: str
    model_type: str
    model_class: type
    config_class: type
    config_from_hf: Callable[[dict], dict]
    config_to_hf: Callable[[object], dict]
    weights_from_hf: Callable[[object, dict], dict] = same_names
    weights_to_hf: Callable[[object, dict], dict] = same_names


_ADAPTERS: dict[str, HFAdapter] = {}  # architecture -> adapter, in registration order
_BY_MODEL_TYPE: dict[str, HFAdapter] = {}  # model_type -> the first adapter registered for it
_BY_CLASS: dict[type, HFAdapter] = {}  # model class -> the first adapter registered for it (what save writes)


def register_architecture(adapter: HFAdapter) -> HFAdapter:
    """Make from_pretrained load, and save_pretrained write, `adapter.architecture`. A second
    adapter for the same architecture is a ValueError (two files claiming one name); re-running
    the registering module (importlib.reload) replaces its own entry."""
    old = _ADAPTERS.get(adapter.architecture)
    if old is not None:
        if _qualified(old.model_class) != _qualified(adapter.model_class):
            raise ValueError(f"architecture {adapter.architecture!r} is already registered for "
                             f"{_qualified(old.model_class)}; cannot register it for "
                             f"{_qualified(adapter.model_class)}")
        for table in (_BY_MODEL_TYPE, _BY_CLASS):
            for key in [k for k, v in table.items() if v is old]:
                del table[key]
    _ADAPTERS[adapter.architecture] = adapter
    _BY_MODEL_TYPE.setdefault(adapter.model_type, adapter)
    _BY_CLASS.setdefault(adapter.model_class, adapter)
    return adapter


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _adapter_for_config(c: dict) -> HFAdapter:
    archs = c.get("architectures") or []
    if not isinstance(archs, list):
        raise ValueError(f"{config_path(c)}: architectures is {archs!r}; expected a list of class names")
    for a in archs:
        if a in _ADAPTERS:
            return _ADAPTERS[a]
    if c.get("model_type") in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[c["model_type"]]
    raise ValueError(f"unsupported architecture {archs or c.get('model_type')!r}; "
                     f"tinyml loads {', '.join(_ADAPTERS)}")


def _adapter_for_model(model) -> HFAdapter:
    """The adapter of the model's class or, for a subclass, of its nearest registered base."""
    for cls in type(model).__mro__:
        if cls in _BY_CLASS:
            return _BY_CLASS[cls]
    raise TypeError(f"save_pretrained: no Hugging Face format for {type(model).__name__}")


class HFMixin:
    """`Model.from_pretrained(folder)` and `model.save_pretrained(folder)`, as transformers' models
    have them; the class method refuses a folder holding another architecture."""

    @classmethod
    def from_pretrained(cls, folder: str, dtype=None, device=None, **overrides):
        model = from_pretrained(folder, dtype=dtype, device=device, **overrides)
        if not isinstance(model, cls):
            raise TypeError(f"{cls.__name__}.from_pretrained({folder!r}): the folder holds a "
                            f"{type(model).__name__} ({read_config(folder).get('architectures')}); use "
                            f"{type(model).__name__}.from_pretrained or tinyml.models.from_pretrained")
        return model

    def save_pretrained(self, folder: str) -> None:
        save_pretrained(self, folder)


# ---- reading config.json -----------------------------------------------------------------------
_REQUIRED = object()


class _Config(dict):
    """config.json's contents, with the file's path for error messages."""

    def __init__(self, data: dict, path: str):
        super().__init__(data)
        self.path = path


_KINDS = {"int": "an integer", "int>0": "a positive integer", "float": "a number", "bool": "true or false",
          "str": "a string", "dict": "a JSON object"}


def config_path(c: dict) -> str:
    """The file a config dict was read from, for error messages ("config.json" if not from a file)."""
    return getattr(c, "path", "config.json")


def config_value(c: dict, key: str, kind: str, default=_REQUIRED):
    """config.json's `key`, checked to be of `kind` ("int", "int>0", "float", "bool", "str", "dict");
    a missing required key or a value of another type is a ValueError naming the file and the key.
    None passes when it is the default."""
    path = config_path(c)
    if key not in c or (c[key] is None and default is not _REQUIRED):
        if default is _REQUIRED:
            needer = c.get("model_type") or "this model"
            raise ValueError(f"{path}: the config has no {key!r}, which {needer} needs")
        return default
    v = c[key]
    ok = {"int": lambda: isinstance(v, int) and not isinstance(v, bool),
          "int>0": lambda: isinstance(v, int) and not isinstance(v, bool) and v > 0,
          "float": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
          "bool": lambda: isinstance(v, bool), "str": lambda: isinstance(v, str),
          "dict": lambda: isinstance(v, dict)}[kind]()
    if not ok:
        raise ValueError(f"{path}: {key} is {v!r}; expected {_KINDS[kind]}")
    return float(v) if kind == "float" else v


# ---- folders -----------------------------------------------------------------------------------
def _read_json(path: str, what: str) -> dict:
    """A JSON object from `path`; an unreadable, empty or non-object file is a ValueError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not a valid {what} (invalid JSON: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a valid {what} (a JSON {type(data).__name__}, not an object)")
    return data


def _read_weights(folder: str) -> dict[str, np.ndarray]:
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(single):
        return read_safetensors(single)[0]
    if os.path.isfile(index):
        weight_map = _read_json(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError(f"{index}: 'weight_map' is missing or not an object of tensor name -> shard")
        weights: dict = {}
        found_in: dict = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = os.path.join(folder, shard)
            if not os.path.isfile(shard_path):
                raise FileNotFoundError(f"{index} names the shard {shard!r}, which is not in {folder}")
            for name, w in read_safetensors(shard_path)[0].items():
                if name in weights:  # which copy is right cannot be told: refuse rather than let one win
                    raise ValueError(f"{folder}: tensor {name!r} is stored twice, in {found_in[name]} "
                                     f"and in {shard}")
                weights[name], found_in[name] = w, shard
        missing = set(weight_map) - set(weights)
        if missing:
            raise ValueError(f"{index} lists tensors its shards do not hold: {sorted(missing)[:5]}")
        return weights
    if os.path.exists(os.path.join(folder, "pytorch_model.bin")):
        raise ValueError(f"{folder} holds only pytorch_model.bin; tinyml reads safetensors (convert it with "
                         "transformers: model.save_pretrained(folder, safe_serialization=True))")
    raise FileNotFoundError(f"{folder} holds no weights: looked for model.safetensors and "
                            "model.safetensors.index.json (with its shards)")


def read_config(folder: str) -> dict:
    """config.json of a Hugging Face format folder as a dict (a missing folder or file is a
    FileNotFoundError, an invalid one a ValueError, each naming the path)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder!r} is not a folder; from_pretrained reads a Hugging Face format "
                                "folder from disk (config.json + model.safetensors) and downloads nothing")
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config.json in {folder} (from_pretrained looks for config.json and "
                                "model.safetensors or model.safetensors.index.json)")
    return _Config(_read_json(path, "config.json"), path)


def _state_for(folder: str, weights: dict[str, np.ndarray], model) -> dict:
    """Checkpoint arrays as tensors for model.load_state_dict: floating ones converted to the
    dtype of the model's entry (the same cast model.to(dtype) makes), integer and bool ones kept
    exactly (as transformers keeps int/bool buffers); a floating/non-floating mix-up is an error."""
    state = {}
    for k, current in model.state_dict().items():
        w = tinyml.from_numpy(weights[k])  # read_safetensors's arrays are our own: no copy
        if w.dtype.is_floating_point != current.dtype.is_floating_point:
            raise ValueError(f"{folder}: tensor {k!r} is {w.dtype} in the checkpoint, but the model holds it "
                             f"as {current.dtype}")
        state[k] = w.to(current.dtype) if w.dtype.is_floating_point else w
    return state


def from_pretrained(folder: str, dtype=None, device=None, **overrides):
    """The tinyml model for a Hugging Face folder, weights loaded, in eval mode. Floating-point
    parameters are float32, or `dtype` (e.g. tinyml.bfloat16: what model.to(dtype) gives); integer
    and bool buffers keep their dtype. `overrides` replace config fields (e.g. dropout=0.1)."""
    c = read_config(folder)
    adapter = _adapter_for_config(c)
    cfg = adapter.config_class(**{**adapter.config_from_hf(c), **overrides})
    model = adapter.model_class(cfg)
    if dtype is not None:
        model.to(dtype=dtype)  # parameters first, so each checkpoint tensor is cast once, straight to dtype
    weights = adapter.weights_from_hf(cfg, _read_weights(folder))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{folder}: weights do not match {adapter.architecture}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for k, shape in expected.items():
        if tuple(weights[k].shape) != shape:
            raise ValueError(f"{folder}: {k} has shape {tuple(weights[k].shape)}, the config implies {shape}")
    model.load_state_dict(_state_for(folder, weights, model), strict=True)
    if device is not None:
        model.to(device)
    return model.eval()


def save_pretrained(model, folder: str) -> None:
    """Write config.json and model.safetensors (float32 as the model holds them) that
    transformers' AutoModel*.from_pretrained loads."""
    adapter = _adapter_for_model(model)
    c = adapter.config_to_hf(model.config)  # first: an option transformers lacks fails before any file
    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    hf_state = {k: np.ascontiguousarray(w) for k, w in adapter.weights_to_hf(model.config, state).items()}
    tmp = os.path.join(folder, f"model.safetensors.tmp{os.getpid()}")
    write_safetensors(tmp, hf_state, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(folder, "model.safetensors"))
    dtypes = {str(v.dtype).split(".")[-1] for v in model.state_dict().values()}
    c = {"architectures": [adapter.architecture], "dtype": dtypes.pop() if len(dtypes) == 1 else "float32",
         "model_type": adapter.model_type, **c}
    tmp = os.path.join(folder, f"config.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(c, f, indent=2)
    os.replace(tmp, os.path.join(folder, "config.json"))
