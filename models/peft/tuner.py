"""What every adapter method shares: choosing target modules, the adapter-layer protocol, and
PeftModel (peft's names and habits).

    model = get_peft_model(gpt, LoraConfig(r=8, target_modules=["c_attn"]))
    model.print_trainable_parameters()       # trainable params: ... || all params: ... || trainable%: ...
    model.add_adapter("fr", LoraConfig(r=4, target_modules="all-linear")); model.set_adapter("fr")
    with model.disable_adapter():             # the base model alone
        logits, _ = model(idx)
    base = model.merge_and_unload()           # LoRA folded into the weights, wrappers gone

Target modules follow peft: a list of names matches a module whose dotted path equals a name or
ends with "." + name; a string is a regex that must match the whole path; "all-linear" is every
nn.Linear except the output head (lm_head / decoder).
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import tinyml.nn as nn
from tinyml import no_grad

from .lora_function import untag_norm_outputs

PREFIX = "base_model.model."  # peft's prefix of saved adapter tensor names
OUTPUT_HEADS = ("lm_head", "decoder")  # never targeted by "all-linear" (peft leaves the output layer alone)


def matches_target(path: str, target_modules, exclude_modules=None) -> bool:
    """peft's check_target_module_exists for one dotted module path."""
    if exclude_modules:
        if isinstance(exclude_modules, str):
            if re.fullmatch(exclude_modules, path):
                return False
        elif path in exclude_modules or any(path.endswith("." + e) for e in exclude_modules):
            return False
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, path) is not None
    return path in target_modules or any(path.endswith("." + t) for t in target_modules)


def find_targets(model: nn.Module, config, kinds: tuple = (nn.Linear,)) -> list[str]:
    """Dotted paths of the modules `config.target_modules` selects (only modules of `kinds`);
    a selection that matches nothing is a ValueError naming the pattern and what the model holds."""
    tm = config.target_modules
    if tm is None:
        raise ValueError(f"{type(config).__name__}.target_modules is None: give a list of module names, "
                         "a regex or 'all-linear'")
    if isinstance(tm, (list, tuple, set)) and not all(isinstance(t, str) for t in tm):
        raise TypeError(f"target_modules must be strings, got {tm!r}")
    out = []
    for path, m in model.named_modules():
        if not path or not isinstance(m, kinds):
            continue
        if tm == "all-linear":
            if path.rsplit(".", 1)[-1] in OUTPUT_HEADS:
                continue
            if matches_target(path, ".*", config.exclude_modules):
                out.append(path)
        elif matches_target(path, tm, config.exclude_modules):
            out.append(path)
    if not out:
        names = sorted({p.rsplit(".", 1)[-1] for p, m in model.named_modules() if p and isinstance(m, kinds)})
        kind = "/".join(k.__name__ for k in kinds)
        raise ValueError(f"target_modules {tm!r} matched no {kind} module of {type(model).__name__}; its "
                         f"{kind} modules are named {names}")
    return out


def pattern_value(path: str, patterns: dict, default):
    """peft's rank_pattern / alpha_pattern lookup: the first key k with re.match(rf"(.*\\.)?{k}$", path)."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?{key}$", path):
            return value
    return default


def set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path)
    setattr(parent, name, module)


class AdapterLayer:
    """The protocol of every adapter-carrying module (LoRA wrappers, bottleneck holders, ...):

    adapters: dict name -> its config; active_adapters: the names used in forward;
    disabled: forward is the base's alone; merged_adapters: folded into the base weights.
    Subclasses give `adapter_parameters(name)` and, when they can, `merge`/`unmerge`."""

    mergeable = False
    adapter_containers: tuple = ()  # the ModuleDicts (adapter name -> module) holding the adapter weights

    def _init_adapter_state(self, module_name: str) -> None:
        d = self.__dict__
        d["module_name"] = module_name
        d["adapters"] = {}
        d["active_adapters"] = []
        d["merged_adapters"] = []
        d["disabled"] = False

    @property
    def merged(self) -> bool:
        return bool(self.merged_adapters)

    def adapter_parameters(self, name: str):
        raise NotImplementedError

    def set_adapter(self, names) -> None:
        """Make `names` the active adapters here; only their parameters train (as peft)."""
        names = [names] if isinstance(names, str) else list(names)
        for n in self.adapters:
            for p in self.adapter_parameters(n):
                p.requires_grad_(n in names)
        self.__dict__["active_adapters"] = [n for n in names if n in self.adapters]

    def merge(self, adapter_names=None, safe_merge: bool = False) -> None:
        raise TypeError(f"{type(self).__name__} at {self.module_name!r}: this adapter changes the "
                        "computation, not a weight, and cannot be merged into the base model")

    def unmerge(self) -> None:
        if self.merged_adapters:
            raise TypeError(f"{type(self).__name__} at {self.module_name!r} cannot unmerge")

    def delete_adapter(self, name: str) -> None:
        raise NotImplementedError

    def unload(self):
        """The module to put back in the model when the adapters are removed (None: remove hooks only)."""
        raise NotImplementedError


def adapter_layers(model: nn.Module):
    """(path, layer) of every AdapterLayer in model."""
    return [(p, m) for p, m in model.named_modules() if isinstance(m, AdapterLayer)]


def adapter_tensors(model: nn.Module, adapter_name: str) -> dict:
    """{saved name: (adapter layer path, parameter or buffer)} of one adapter, built from the
    structure of the adapter layers (never by matching "lora" or "weight" in names). The saved
    name is peft's: base_model.model.<layer path>.<container>.<tensor>, the adapter name left out."""
    out = {}
    for path, layer in adapter_layers(model):
        for container in layer.adapter_containers:
            modules = layer._modules[container]
            if adapter_name not in modules:
                continue
            for key, tensor in modules[adapter_name].state_dict(keep_vars=True).items():
                out[f"{PREFIX}{path}.{container}.{key}"] = (path, tensor)
    return out


def inject(model: nn.Module, config, adapter_name: str = "default") -> nn.Module:
    """Add adapter `adapter_name` described by `config` to `model` in place (peft's
    inject_adapter_in_model): the method's own module does the placing. Returns model."""
    if not isinstance(adapter_name, str) or not adapter_name or "." in adapter_name:
        raise ValueError(f"adapter_name must be a non-empty string without '.', got {adapter_name!r}")
    inject_fn = getattr(config, "inject", None)
    if inject_fn is None:
        raise TypeError(f"{type(config).__name__} is not an adapter config (LoraConfig, LoraXSConfig, "
                        "SeqBnConfig, DoubleSeqBnConfig, SeqBnInvConfig, LSTConfig)")
    inject_fn(model, adapter_name)
    return model


class PeftModel(nn.Module):
    """A base model with named adapters. forward and attribute lookups go to the base model, so a
    PeftModel trains and samples wherever its base does; `peft_config` maps adapter name -> config."""

    def __init__(self, model: nn.Module, config, adapter_name: str = "default"):
        super().__init__()
        self.base_model = model
        self.peft_config = {}
        self.active_adapter = adapter_name
        self.add_adapter(adapter_name, config)
        self.set_adapter(adapter_name)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = self.__dict__["_modules"].get("base_model")
            if base is None:
                raise
            return getattr(base, name)

    def forward(self, *args, **kwargs):
        # adapters that keep state along a KV cache (ladder side networks) sit at the top of the model
        cache = kwargs.get("cache", args[2] if len(args) > 2 else None)
        for child in self.base_model._modules.values():
            if hasattr(child, "bind_cache"):
                child.bind_cache(cache)
        return self.base_model(*args, **kwargs)

    def get_base_model(self) -> nn.Module:
        return self.base_model

    def restore_base_trainable(self) -> None:
        """Give the base parameters back the requires_grad they had before the first adapter."""
        for p, flag in self.__dict__.get("_base_trainable", []):
            p.requires_grad_(flag)

    # ---- adapters ----------------------------------------------------------------------------
    def add_adapter(self, adapter_name: str, config) -> None:
        """Inject another adapter; the base stays frozen and the active adapter is unchanged."""
        if adapter_name in self.peft_config:
            raise ValueError(f"adapter {adapter_name!r} already exists (adapters: {list(self.peft_config)})")
        if not self.peft_config:
            self.__dict__["_base_trainable"] = [(p, p.requires_grad) for p in self.base_model.parameters()]
            for p in self.base_model.parameters():
                p.requires_grad_(False)
        try:
            inject(self.base_model, config, adapter_name)
        except Exception:
            if not self.peft_config:  # nothing was placed (each method checks before it changes the model)
                self.restore_base_trainable()
            raise
        self.peft_config[adapter_name] = config
        if adapter_name != self.active_adapter:
            self.set_adapter(self.active_adapter)  # the new adapter's parameters stay frozen until chosen

    def set_adapter(self, adapter_name: str) -> None:
        if adapter_name not in self.peft_config:
            raise ValueError(f"adapter {adapter_name!r} not found; adapters: {list(self.peft_config)}")
        for _, layer in adapter_layers(self.base_model):
            layer.set_adapter(adapter_name)
        self.active_adapter = adapter_name

    @property
    def active_adapters(self) -> list[str]:
        return [self.active_adapter]

    def delete_adapter(self, adapter_name: str) -> None:
        if adapter_name not in self.peft_config:
            raise ValueError(f"adapter {adapter_name!r} not found; adapters: {list(self.peft_config)}")
        if len(self.peft_config) == 1:
            raise ValueError(f"{adapter_name!r} is the only adapter; use unload() to remove it")
        for path, layer in adapter_layers(self.base_model):
            if adapter_name in layer.adapters:
                layer.delete_adapter(adapter_name)
        del self.peft_config[adapter_name]
        if self.active_adapter == adapter_name:
            self.set_adapter(next(iter(self.peft_config)))

    @contextmanager
    def disable_adapter(self):
        """`with model.disable_adapter():` runs the base model alone (merged LoRA is unmerged first)."""
        layers = [layer for _, layer in adapter_layers(self.base_model)]
        for layer in layers:
            if layer.merged:
                layer.unmerge()
            layer.__dict__["disabled"] = True
        try:
            yield
        finally:
            for layer in layers:
                layer.__dict__["disabled"] = False

    # ---- merging -----------------------------------------------------------------------------
    def merge_adapter(self, safe_merge: bool = False) -> None:
        for _, layer in adapter_layers(self.base_model):
            layer.merge(safe_merge=safe_merge)

    merge = merge_adapter

    def unmerge_adapter(self) -> None:
        for _, layer in adapter_layers(self.base_model):
            layer.unmerge()

    unmerge = unmerge_adapter

    def _unload(self, merge: bool, safe_merge: bool = False) -> nn.Module:
        layers = adapter_layers(self.base_model)
        if merge:
            for path, layer in layers:  # check every layer first: fail before changing anything
                if not layer.mergeable:
                    raise TypeError(f"{type(layer).__name__} at {path!r} cannot be merged into the base "
                                    "model; use unload() to remove it")
        for path, layer in layers:
            if merge:
                if not layer.merged:
                    layer.merge(safe_merge=safe_merge)
            elif layer.merged:
                layer.unmerge()
            replacement = layer.unload()
            if replacement is not None:
                set_submodule(self.base_model, path, replacement)
            else:  # a hook-based adapter: its hooks are gone, drop the holder
                parent_path, _, name = path.rpartition(".")
                delattr(self.base_model.get_submodule(parent_path), name)
        untag_norm_outputs(self.base_model)  # LoRA's LayerNorm hooks (lora_function.py)
        return self.base_model

    def merge_and_unload(self, safe_merge: bool = False) -> nn.Module:
        """Fold the active adapter into the base weights and return the base model, wrappers gone."""
        return self._unload(True, safe_merge)

    def unload(self) -> nn.Module:
        """Remove every adapter without merging; returns the original base model."""
        return self._unload(False)

    # ---- folders (peft's PeftModel.save_pretrained / from_pretrained) --------------------------------
    def save_pretrained(self, folder: str, adapter_name: str | None = None) -> None:
        """Write the adapter (not the base) as peft does: adapter_config.json + adapter_model.safetensors."""
        from .interop import save_adapter  # interop builds on this module

        save_adapter(self, folder, adapter_name)

    @classmethod
    def from_pretrained(cls, model: nn.Module, folder: str, adapter_name: str = "default",
                        is_trainable: bool = False) -> PeftModel:
        """`model` with the adapter folder loaded (tinyml.models.load_adapter)."""
        from .interop import load_adapter  # interop builds on this module

        return load_adapter(model, folder, adapter_name, is_trainable)

    # ---- the adapter alone ---------------------------------------------------------------------
    def adapter_state_dict(self, adapter_name: str | None = None) -> dict:
        """The tensors of one adapter (the active one by default) under peft's saved names,
        detached: what an adapter-only checkpoint holds."""
        name = self.active_adapter if adapter_name is None else adapter_name
        return {k: t.detach() for k, (_, t) in adapter_tensors(self.base_model, name).items()}

    def load_adapter_state_dict(self, state: dict, adapter_name: str | None = None) -> None:
        """Copy `state` (from adapter_state_dict) into the adapter; the names and shapes must match
        exactly, else a ValueError naming the differences."""
        name = self.active_adapter if adapter_name is None else adapter_name
        own = adapter_tensors(self.base_model, name)
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"adapter {name!r}: state does not fit: missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}")
        for k, (path, t) in own.items():
            if tuple(state[k].shape) != tuple(t.shape):
                raise ValueError(f"adapter {name!r}: {k} has shape {tuple(state[k].shape)}, module {path!r} "
                                 f"needs {tuple(t.shape)}")
        with no_grad():
            for k, (_, t) in own.items():
                t.copy_(state[k].to(t.dtype).to(t.device))

    # ---- parameters --------------------------------------------------------------------------
    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())

    def print_trainable_parameters(self) -> None:
        trainable, total = self.get_nb_trainable_parameters()
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || "
              f"trainable%: {100 * trainable / total:.4f}")


def get_peft_model(model: nn.Module, config, adapter_name: str = "default") -> PeftModel:
    """peft.get_peft_model: freeze `model`, inject adapter `adapter_name`, wrap in a PeftModel."""
    return PeftModel(model, config, adapter_name)
