"""Adapter folders as peft writes them: adapter_config.json + adapter_model.safetensors.

    model = tinyml.models.from_pretrained("gpt2-folder")
    model = tinyml.models.load_adapter(model, "peft-adapter-folder")   # a PeftModel, logits as peft's
    tinyml.models.save_adapter(model, "out/")            # peft.PeftModel.from_pretrained reads it

A LoRA adapter's tensors are named `base_model.model.<module path>.lora_A.weight` (and lora_B), the
adapter name left out, as peft's get_peft_model_state_dict does. The names are built from the
adapter layers tinyml placed, never found by searching for "lora" or "weight" in names, so module
names that contain either word map correctly. tinyml's other methods (LoRA-XS, bottleneck adapters)
use the same layout with their own peft_type, which only tinyml reads.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os

import tinyml
import tinyml.nn as nn
from tinyml.io import read_safetensors, write_safetensors

from .bottleneck import DoubleSeqBnConfig, SeqBnConfig, SeqBnInvConfig
from .ladder import LSTConfig
from .lora import LoraConfig
from .lora_xs import LoraXSConfig
from .tuner import PREFIX, PeftModel, adapter_tensors, get_peft_model

CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"
CONFIGS = {c.peft_type: c for c in (LoraConfig, LoraXSConfig, SeqBnConfig, DoubleSeqBnConfig, SeqBnInvConfig,
                                    LSTConfig)}
# peft options that change what the adapter computes: loading must refuse them when set
UNSUPPORTED = {"use_dora": False, "modules_to_save": None, "layers_to_transform": None, "lora_bias": False,
               "target_parameters": None, "use_qalora": False, "trainable_token_indices": None}


def config_from_dict(data: dict, path: str = CONFIG_NAME):
    """The tinyml config for an adapter_config.json dict; options tinyml does not implement are errors."""
    kind = data.get("peft_type")
    if kind not in CONFIGS:
        raise ValueError(f"{path}: peft_type {kind!r} is not one tinyml reads; known: {sorted(CONFIGS)}")
    for key, default in UNSUPPORTED.items():
        value = data.get(key, default)
        if value not in (default, [], {}, False, None):
            raise NotImplementedError(f"{path}: {key}={value!r} is not implemented by tinyml's {kind} "
                                      "adapter")
    cls = CONFIGS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if isinstance(kwargs.get("init_lora_weights"), str):
        kwargs["init_lora_weights"] = True  # pissa/olora/...: an initialisation; weights come from the file
    # peft's flag describes transformers' Conv1D layout (GPT-2); A and B have the same shapes either
    # way and tinyml's layers are all nn.Linear (out, in), so it has nothing left to say here
    if "fan_in_fan_out" in kwargs:
        kwargs["fan_in_fan_out"] = False
    if kind == "LST" and kwargs.get("init") == "fisher":
        # the side weights come from the file: no batches to score, the magnitude init is replaced
        kwargs["init"] = "magnitude"
    if isinstance(kwargs.get("target_modules"), list):
        kwargs["target_modules"] = sorted(kwargs["target_modules"])
    return cls(**kwargs)


def config_to_dict(config) -> dict:
    # LST's Fisher batches and loss are used once at injection: neither is JSON, neither is kept
    out = {f.name: copy.deepcopy(getattr(config, f.name)) for f in dataclasses.fields(config)
           if f.name not in ("fisher_batches", "fisher_loss")}
    if isinstance(out.get("target_modules"), (set, tuple)):
        out["target_modules"] = sorted(out["target_modules"])
    if out["peft_type"] == "LORA":  # peft's keys for what tinyml keeps at peft's defaults
        out.update(task_type="CAUSAL_LM", inference_mode=True, base_model_name_or_path=None, use_dora=False,
                   modules_to_save=None, layers_to_transform=None, layers_pattern=None, lora_bias=False)
    return out


def _unwrap(model) -> tuple[nn.Module, PeftModel | None]:
    return (model.base_model, model) if isinstance(model, PeftModel) else (model, None)


def save_adapter(model: PeftModel, folder: str, adapter_name: str | None = None) -> None:
    """Write one adapter (the active one by default) as adapter_config.json + adapter_model.safetensors."""
    if not isinstance(model, PeftModel):
        raise TypeError(f"save_adapter needs a PeftModel (from get_peft_model or load_adapter), got "
                        f"{type(model).__name__}")
    name = model.active_adapter if adapter_name is None else adapter_name
    if name not in model.peft_config:
        raise ValueError(f"adapter {name!r} not found; adapters: {list(model.peft_config)}")
    tensors = adapter_tensors(model.base_model, name)
    config = config_to_dict(model.peft_config[name])
    if config["peft_type"] == "LORA" and type(model.base_model).__name__ == "GPT":
        config["fan_in_fan_out"] = True  # transformers' GPT-2 holds these layers as Conv1D (in, out)
    os.makedirs(folder, exist_ok=True)
    arrays = {k: t.detach().float().cpu().numpy() for k, (_, t) in tensors.items()}
    tmp = os.path.join(folder, f"{WEIGHTS_NAME}.tmp{os.getpid()}")
    write_safetensors(tmp, arrays, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(folder, WEIGHTS_NAME))
    tmp = os.path.join(folder, f"{CONFIG_NAME}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, os.path.join(folder, CONFIG_NAME))


def read_adapter_config(folder: str):
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {CONFIG_NAME} in {folder!r} (an adapter folder holds {CONFIG_NAME} and "
                                f"{WEIGHTS_NAME})")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return config_from_dict(data, path)


def _file_key(key: str, stored: dict) -> str | None:
    """key, or key without the first module of the path (an adapter saved on transformers' base
    model class, e.g. GPT2Model's h.0... against GPT2LMHeadModel's transformer.h.0...)."""
    if key in stored:
        return key
    path = key[len(PREFIX):]
    if "." in path:
        alt = PREFIX + path.split(".", 1)[1]
        if alt in stored:
            return alt
    return None


def load_adapter(model: nn.Module, folder: str, adapter_name: str = "default",
                 is_trainable: bool = False) -> PeftModel:
    """Add the adapter in `folder` to `model` (a tinyml model or a PeftModel) under `adapter_name`
    and make it active. The adapter's tensors must cover exactly the modules its config targets,
    with matching shapes; otherwise a ValueError names the module and both shapes, and the model is
    left as it was. is_trainable=False (peft's default) freezes the loaded adapter."""
    config = read_adapter_config(folder)
    weights_path = os.path.join(folder, WEIGHTS_NAME)
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {folder!r}")
    stored = read_safetensors(weights_path)[0]
    base, peft = _unwrap(model)
    # inject, then check every tensor against the file; on any mismatch take the adapter out again
    if peft is None:
        peft = get_peft_model(base, config, adapter_name)
    else:
        peft.add_adapter(adapter_name, config)
    try:
        _load_tensors(peft, adapter_name, stored, weights_path)
    except Exception:
        if len(peft.peft_config) == 1:
            peft.unload()
            peft.restore_base_trainable()
        else:
            peft.delete_adapter(adapter_name)
        raise
    peft.set_adapter(adapter_name)
    if not is_trainable:
        for p in peft.parameters():
            p.requires_grad_(False)
    return peft


def _load_tensors(peft: PeftModel, adapter_name: str, stored: dict, path: str) -> None:
    targets = adapter_tensors(peft.base_model, adapter_name)
    used, updates = set(), []
    for key, (module, tensor) in targets.items():
        fkey = _file_key(key, stored)
        if fkey is None:
            raise ValueError(f"{path} has no tensor {key!r}: the adapter does not cover module {module!r} "
                             f"(shape {tuple(tensor.shape)}) that its config targets; was it made for "
                             "another base model?")
        w = stored[fkey]
        if tuple(w.shape) != tuple(tensor.shape):
            raise ValueError(f"{path}: {fkey} has shape {tuple(w.shape)}, but module {module!r} needs "
                             f"{tuple(tensor.shape)}: the adapter was made for a base model of other sizes")
        used.add(fkey)
        updates.append((tensor, w))
    extra = sorted(set(stored) - used)
    if extra:
        raise ValueError(f"{path} holds tensors for modules this model lacks or the config does not target: "
                         f"{extra[:5]} (base model mismatch?)")
    with tinyml.no_grad():
        for tensor, w in updates:
            tensor.copy_(tinyml.tensor(w, dtype=tensor.dtype, device=tensor.device))
