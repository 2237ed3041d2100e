"""LoRA (Hu et al. 2021) and rsLoRA (Kalajdzievski 2023) on nn.Linear, as peft builds them.

    h = W x + b + s * B A dropout(x)      A: (r, in) Kaiming-uniform a=sqrt(5), B: (out, r) zeros
    s = alpha / r  (LoRA)   or   alpha / sqrt(r)  (rsLoRA, use_rslora=True)

merge() adds s * B A to W (s * (B A)^T when fan_in_fan_out: a base whose weight is stored (in, out)
as GPT-2's Conv1D; tinyml's GPT holds c_attn/c_proj/c_fc as nn.Linear (out, in), so as peft does
for nn.Linear the flag is turned off with a warning); unmerge() subtracts it again. The adapter
weights are float32 (float64 on a float64 base) whatever the base dtype, as peft's
autocast_adapter_dtype keeps them; merging into a bfloat16 base rounds W + s B A to bfloat16.
State-dict names are peft's: <path>.base_layer.weight, <path>.lora_A.<adapter>.weight, ...
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

import tinyml
import tinyml.nn as nn
from tinyml.amp import is_autocast_enabled

from .lora_function import LoraLinearFunction, recomputable_source, tag_norm_outputs
from .tuner import AdapterLayer, find_targets, pattern_value, set_submodule


@dataclass
class LoraConfig:
    """peft.LoraConfig's fields that tinyml implements (bias="none" only, as peft's default)."""

    r: int = 8
    lora_alpha: float = 8
    target_modules: list[str] | str | None = None
    exclude_modules: list[str] | str | None = None
    lora_dropout: float = 0.0
    fan_in_fan_out: bool = False
    bias: str = "none"
    use_rslora: bool = False
    init_lora_weights: bool = True
    rank_pattern: dict = field(default_factory=dict)
    alpha_pattern: dict = field(default_factory=dict)
    peft_type: str = "LORA"

    def __post_init__(self):
        if self.bias != "none":
            raise NotImplementedError(f"LoraConfig(bias={self.bias!r}): tinyml trains no base biases; "
                                      "use 'none'")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")

    def inject(self, model: nn.Module, adapter_name: str) -> None:
        inject_linear_adapter(model, self, adapter_name, LoraLinear)


def inject_linear_adapter(model: nn.Module, config, adapter_name: str, layer_class) -> None:
    """Wrap every targeted nn.Linear in `layer_class` (or add the adapter to an existing wrapper)."""
    paths = find_targets(model, config, kinds=(nn.Linear, LoraLinear))
    if config.fan_in_fan_out:
        warnings.warn(f"fan_in_fan_out=True but the targets ({paths[0]!r}, ...) are nn.Linear (weight stored "
                      "(out, in)); setting fan_in_fan_out to False", stacklevel=4)
        config.fan_in_fan_out = False
    plan = []
    for path in paths:  # check all ranks before changing the model
        module = model.get_submodule(path)
        base = module.base_layer if isinstance(module, LoraLinear) else module
        r = pattern_value(path, config.rank_pattern, config.r)
        check_rank(path, r, base)
        plan.append((path, module, r, pattern_value(path, config.alpha_pattern, config.lora_alpha)))
    for path, module, r, alpha in plan:
        if isinstance(module, LoraLinear):
            if type(module) is not layer_class:
                raise TypeError(f"{path!r} already carries a {type(module).__name__}; one kind of linear "
                                f"adapter per module, cannot add a {layer_class.__name__}")
            if adapter_name in module.adapters:
                raise ValueError(f"{path!r} already has an adapter named {adapter_name!r}")
            module.update_layer(adapter_name, config, r, alpha)
        else:
            set_submodule(model, path, layer_class(module, path, adapter_name, config, r, alpha))
    tag_norm_outputs(model)  # so that a LoRA layer after a LayerNorm need not keep its input


def check_rank(path: str, r, base: nn.Linear) -> None:
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        raise ValueError(f"rank r must be a positive integer, got {r!r} for {path!r}")
    if r > min(base.in_features, base.out_features):
        limit = min(base.in_features, base.out_features)
        raise ValueError(f"rank r={r} is larger than the layer {path!r} allows: its weight is "
                         f"{tuple(base.weight.shape)} (out, in), so r <= {limit}")


def adapter_dtype(base: nn.Linear):
    return tinyml.float64 if base.weight.dtype == tinyml.float64 else tinyml.float32


class LoraLinear(nn.Module, AdapterLayer):
    """nn.Linear `base_layer` plus low-rank updates, one per adapter name."""

    mergeable = True
    adapter_containers = ("lora_A", "lora_B")

    def __init__(self, base_layer: nn.Linear, module_name: str, adapter_name: str, config, r: int, alpha):
        super().__init__()
        self._init_adapter_state(module_name)
        self.base_layer = base_layer
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self.lora_A, self.lora_B = nn.ModuleDict(), nn.ModuleDict()
        self.lora_dropout = nn.ModuleDict()
        self.r, self.lora_alpha, self.scaling = {}, {}, {}
        self.fan_in_fan_out = False
        self.update_layer(adapter_name, config, r, alpha)
        self.set_adapter(adapter_name)

    def _new_linear(self, n_in: int, n_out: int) -> nn.Linear:
        w = self.base_layer.weight
        return nn.Linear(n_in, n_out, bias=False, device=w.device, dtype=adapter_dtype(self.base_layer))

    def update_layer(self, adapter_name: str, config, r: int, alpha) -> None:
        self.adapters[adapter_name] = config
        self.r[adapter_name], self.lora_alpha[adapter_name] = r, alpha
        self.scaling[adapter_name] = alpha / math.sqrt(r) if config.use_rslora else alpha / r
        p = config.lora_dropout
        self.lora_dropout[adapter_name] = nn.Dropout(p) if p else nn.Identity()
        self._create_weights(adapter_name, config, r)
        for p in self.adapter_parameters(adapter_name):
            p.requires_grad_(False)  # trainable once set_adapter chooses it

    def _create_weights(self, adapter_name: str, config, r: int) -> None:
        self.lora_A[adapter_name] = self._new_linear(self.in_features, r)
        self.lora_B[adapter_name] = self._new_linear(r, self.out_features)
        if config.init_lora_weights:  # else the Linear default init of both: a non-identity start, for tests
            nn.init.kaiming_uniform_(self.lora_A[adapter_name].weight, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B[adapter_name].weight)

    def adapter_parameters(self, name: str):
        return [m.weight for d in (self.lora_A, self.lora_B) for k, m in d.items() if k == name]

    def delete_adapter(self, name: str) -> None:
        if name in self.merged_adapters:
            raise ValueError(f"adapter {name!r} is merged into {self.module_name!r}; unmerge() before "
                             "deleting it")
        for d in (self.lora_A, self.lora_B, self.lora_dropout):
            d.pop(name)
        for d in (self.adapters, self.r, self.lora_alpha, self.scaling):
            d.pop(name)
        self.__dict__["active_adapters"] = [n for n in self.active_adapters if n != name]

    # ---- the update --------------------------------------------------------------------------
    def lora_path(self, name: str, x):
        """s * B A x for one adapter (no dropout): what forward adds. The scale multiplies the rank-r
        tensor, not the (..., out) one, so the graph keeps nothing of output size for it."""
        return self.lora_B[name](self.lora_A[name](x) * self.scaling[name])

    def get_delta_weight(self, name: str):
        """s * B A, (out, in), in the adapter dtype."""
        return (self.lora_B[name].weight @ self.lora_A[name].weight) * self.scaling[name]

    @property
    def weight(self):
        """The weight a caller reading `.weight` directly should use (a tied or functional head such
        as GPT's `F.linear(x, lm_head.weight)`): W + sum of active s B A, differentiable (no dropout)."""
        W = self.base_layer.weight
        if self.disabled or self.merged:
            return W
        for name in self.active_adapters:
            W = W + self.get_delta_weight(name).to(W.dtype)
        return W

    @property
    def bias(self):
        return self.base_layer.bias

    def forward(self, x):
        if self.disabled or self.merged:
            return self.base_layer(x)
        if self._fusable(x):
            name = self.active_adapters[0]
            base = self.base_layer
            source = recomputable_source(x) if self.lora_A[name].weight.requires_grad else None
            return LoraLinearFunction.apply(x, base.weight, base.bias, self.lora_A[name].weight,
                                            self.lora_B[name].weight, float(self.scaling[name]), source)
        result = self.base_layer(x)
        for name in self.active_adapters:
            dt = self.lora_A[name].weight.dtype
            h = self.lora_dropout[name](x if x.dtype == dt else x.to(dt))
            update = self.lora_path(name, h)
            result = result + (update if update.dtype == result.dtype else update.to(result.dtype))
        return result

    def _fusable(self, x) -> bool:
        """One active adapter, no dropout, a frozen base of the adapter's dtype, autocast off: the
        single-node path of lora_function.py, which keeps x once (or not at all) for backward."""
        if (len(self.active_adapters) != 1 or type(self.base_layer) is not nn.Linear
                or type(self).lora_path is not LoraLinear.lora_path):  # LoRA-XS has a path of its own
            return False
        name = self.active_adapters[0]
        drop, base = self.lora_dropout[name], self.base_layer
        if not (isinstance(drop, nn.Identity) or not drop.training or drop.p == 0):
            return False
        frozen = not base.weight.requires_grad and (base.bias is None or not base.bias.requires_grad)
        dt = self.lora_A[name].weight.dtype
        return (frozen and x.dtype == dt and base.weight.dtype == dt and base.weight.ndim == 2
                and x.ndim >= 1 and x.shape[-1] == self.in_features
                and not is_autocast_enabled(x.device.type))

    # ---- merging -----------------------------------------------------------------------------
    def merge(self, adapter_names=None, safe_merge: bool = False) -> None:
        """W += s B A for each active adapter; merging one already merged is a ValueError."""
        names = self.active_adapters if adapter_names is None else list(adapter_names)
        W = self.base_layer.weight
        for name in names:
            if name not in self.adapters:
                raise ValueError(f"{self.module_name!r} has no adapter {name!r} (it has "
                                 f"{list(self.adapters)})")
            if name in self.merged_adapters:
                raise ValueError(f"adapter {name!r} is already merged into {self.module_name!r} (weight "
                                 f"{tuple(W.shape)}); call unmerge() before merging again")
            with tinyml.no_grad():
                delta = self.get_delta_weight(name).to(W.dtype)
                if safe_merge:
                    merged = W.detach() + delta
                    if not np.isfinite(merged.float().numpy()).all():
                        raise ValueError(f"NaN or inf in the merged weight of {self.module_name!r} "
                                         f"{tuple(W.shape)}: adapter {name!r} seems to be broken")
                W.add_(delta)
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        """W -= s B A for each merged adapter, last merged first."""
        W = self.base_layer.weight
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            with tinyml.no_grad():
                W.sub_(self.get_delta_weight(name).to(W.dtype))

    def unload(self) -> nn.Module:
        return self.base_layer

    def extra_repr(self) -> str:
        return f"adapters={list(self.adapters)}, r={self.r}, scaling={self.scaling}"
