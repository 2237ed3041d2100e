"""Bottleneck adapters as the `adapters` library (AdapterHub) places them: SeqBn (Pfeiffer et al.
2020), DoubleSeqBn (Houlsby et al. 2019) and SeqBnInv (SeqBn plus a NICE invertible adapter on
the embeddings, Pfeiffer et al. "MAD-X").

    adapter(h) = up(f(down(h)))      down: C -> C / reduction_factor, f: ReLU (SeqBn) or swish
                                     (DoubleSeqBn); "bert" init: weights N(0, 0.02), biases zero

Placement (adapters' original_ln_before / residual_before_ln rules, written out per layout):
  pre-LN blocks (GPT, Llama), y = x + sublayer(norm(x)):
    SeqBn        after the block:                   y -> y + adapter(y)
    DoubleSeqBn  after attention and after the MLP: s -> s + adapter(s)  (s: the sublayer output,
                 before the residual add)
  post-LN blocks (BERT), y = LN(h + a) with h the FFN output and a its residual:
    SeqBn        y -> LN(h + a + adapter(LN(h + a)))  (the block's own LN, as adapters does)
    DoubleSeqBn  h -> h + adapter(h) inside both SelfOutput modules, before their residual + LN
  SeqBnInv       embeddings e -> nice(e); the final hidden state z -> nice^-1(z) before the (tied)
                 output head. NICE coupling: [x1, x2] -> [y1, y2], y1 = x1 + F(x2),
                 y2 = x2 + G(y1); inverse x2 = y2 - G(y1), x1 = y1 - F(x2).

Adapters attach to the model by forward hooks found from module names (transformer.h.N / model.layers.N
/ bert.encoder.layer.N / backbone.layers.N, their attn / self_attn / attention and mlp / output
children, the embedding output transformer.drop / model.embed_tokens / bert.embeddings /
backbone.embeddings and the final transformer.ln_f / model.norm / cls.predictions.transform /
backbone.norm_f): no model code changes. Mamba blocks have no attention or MLP child, so
DoubleSeqBn (and LST) do not apply to them; SeqBn and SeqBnInv do. The adapter modules become a child
named `bottleneck` (or `invertible`) of the module they follow, so they save with the model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from .tuner import AdapterLayer

ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "silu": F.silu, "gelu": F.gelu, "tanh": tinyml.tanh}
BLOCKS = re.compile(r"^(.*\.)?(h|layers|layer)\.\d+$")
ATTENTION, MLP = ("attn", "self_attn", "attention"), ("mlp",)
EMBEDDING_OUTPUTS = ("transformer.drop", "model.embed_tokens", "bert.embeddings", "backbone.embeddings",
                     "embeddings")
FINAL_HIDDEN = ("transformer.ln_f", "model.norm", "cls.predictions.transform", "backbone.norm_f")


@dataclass
class SeqBnConfig:
    """Pfeiffer's sequential bottleneck (adapters.SeqBnConfig)."""

    reduction_factor: float = 16
    non_linearity: str = "relu"
    original_ln_before: bool = True
    mh_adapter: bool = False
    output_adapter: bool = True
    inv_adapter: str | None = None
    inv_adapter_reduction_factor: float = 2
    dropout: float = 0.0
    scaling: float = 1.0
    leave_out: list[int] = field(default_factory=list)
    peft_type: str = "SEQ_BN"

    def __post_init__(self):
        if self.non_linearity not in ACTIVATIONS:
            raise ValueError(f"non_linearity {self.non_linearity!r} is not one of {sorted(ACTIVATIONS)}")
        if self.inv_adapter not in (None, "nice"):
            raise NotImplementedError(f"inv_adapter={self.inv_adapter!r}: tinyml implements 'nice' only")
        if self.mh_adapter and self.original_ln_before:
            raise NotImplementedError("an adapter after attention with original_ln_before=True (inside the "
                                      "attention residual) is not implemented; use DoubleSeqBnConfig")
        if not self.reduction_factor > 0:
            raise ValueError(f"reduction_factor must be positive, got {self.reduction_factor}")

    def inject(self, model: nn.Module, adapter_name: str) -> None:
        inject_bottleneck(model, self, adapter_name)


@dataclass
class DoubleSeqBnConfig(SeqBnConfig):
    """Houlsby's adapters after attention and after the feed-forward (adapters.DoubleSeqBnConfig)."""

    non_linearity: str = "swish"
    original_ln_before: bool = False
    mh_adapter: bool = True
    peft_type: str = "DOUBLE_SEQ_BN"


@dataclass
class SeqBnInvConfig(SeqBnConfig):
    """SeqBn plus the NICE invertible adapter on the embeddings (adapters.SeqBnInvConfig)."""

    inv_adapter: str | None = "nice"
    peft_type: str = "SEQ_BN_INV"


class Bottleneck(nn.Module):
    """up(f(down(h))) * scaling, with dropout on the output."""

    def __init__(self, hidden: int, config: SeqBnConfig, device=None):
        super().__init__()
        inner = max(1, int(hidden // config.reduction_factor))
        self.adapter_down = nn.Linear(hidden, inner, device=device)
        self.adapter_up = nn.Linear(inner, hidden, device=device)
        self.act = ACTIVATIONS[config.non_linearity]
        self.scaling = config.scaling
        self.dropout = nn.Dropout(config.dropout)
        for lin in (self.adapter_down, self.adapter_up):  # adapters' init_weights="bert"
            nn.init.normal_(lin.weight, mean=0.0, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, h):
        return self.dropout(self.adapter_up(self.act(self.adapter_down(h))) * self.scaling)


class NICECoupling(nn.Module):
    """NICE additive coupling over the last dim (adapters' NICECouplingBlock)."""

    def __init__(self, hidden: int, non_linearity: str, reduction_factor: float, device=None):
        super().__init__()
        self.split1, self.split2 = hidden // 2, hidden - hidden // 2
        act = ACTIVATIONS[non_linearity]

        def subnet(n_in: int, n_out: int) -> nn.Module:
            inner = max(1, int(n_in // reduction_factor))
            return _Subnet(nn.Linear(n_in, inner, device=device), act, nn.Linear(inner, n_out, device=device))

        self.F = subnet(self.split2, self.split1)
        self.G = subnet(self.split1, self.split2)

    def forward(self, x, rev: bool = False):
        x1, x2 = x[..., : self.split1], x[..., self.split1:]
        if not rev:
            y1 = x1 + self.F(x2)
            y2 = x2 + self.G(y1)
        else:
            y2 = x2 - self.G(x1)
            y1 = x1 - self.F(y2)
        return tinyml.cat([y1, y2], dim=-1)


class _Subnet(nn.Module):
    def __init__(self, first: nn.Linear, act, second: nn.Linear):
        super().__init__()
        self.first, self.second, self.act = first, second, act

    def forward(self, x):
        return self.second(self.act(self.first(x)))


class BottleneckLayer(nn.Module, AdapterLayer):
    """The adapters at one site, one per adapter name, applied by forward hooks on `host`.

    kind "residual": host output s -> s + adapter(s); "post_ln": BERT's SelfOutput, see the module
    docstring; "embed" / "final": the NICE coupling forward / inverse."""

    adapter_containers = ("adapter",)

    def __init__(self, module_name: str, kind: str, host: nn.Module):
        super().__init__()
        self._init_adapter_state(module_name)
        self.kind = kind
        self.adapter = nn.ModuleDict()
        d = self.__dict__
        d["_host"] = host  # not a child: the host owns this layer, not the other way round
        d["_captured"] = None
        d["_handles"] = [host.register_forward_hook(self._after_host)]
        if kind == "post_ln":  # the FFN output before the residual add: host.dropout's output
            d["_handles"].append(host.dropout.register_forward_hook(self._capture))

    def add(self, adapter_name: str, config, module: nn.Module) -> None:
        self.adapters[adapter_name] = config
        self.adapter[adapter_name] = module
        for p in module.parameters():
            p.requires_grad_(False)

    def adapter_parameters(self, name: str):
        return list(self.adapter[name].parameters()) if name in self.adapter else []

    def delete_adapter(self, name: str) -> None:
        self.adapter.pop(name)
        self.adapters.pop(name)
        self.__dict__["active_adapters"] = [n for n in self.active_adapters if n != name]

    def _capture(self, module, args, out):
        self.__dict__["_captured"] = out

    def forward(self, h):
        """h with this site's active adapters applied (the "residual" rule)."""
        for name in self.active_adapters:
            h = h + self.adapter[name](h)
        return h

    def _after_host(self, module, args, out):
        if self.disabled or not self.active_adapters:
            return None
        if self.kind == "residual":
            return self(out)
        if self.kind == "post_ln":
            h, a = self._captured, args[1]
            self.__dict__["_captured"] = None
            total = h + a
            for name in self.active_adapters:
                total = total + self.adapter[name](out)
            return module.LayerNorm(total)
        for name in self.active_adapters:  # NICE: forward on the embeddings, inverse before the head
            out = self.adapter[name](out, rev=self.kind == "final")
        return out

    def unload(self):
        for handle in self._handles:
            handle.remove()
        return None

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, adapters={list(self.adapters)}"


def _hidden_size(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return m.embedding_dim
    raise ValueError(f"{type(model).__name__} has no nn.Embedding to read the hidden size from; bottleneck "
                     "adapters need a transformer with token embeddings")


def _first_existing(model: nn.Module, names) -> str | None:
    paths = dict(model.named_modules())
    return next((n for n in names if n in paths), None)


def _sites(model: nn.Module, config: SeqBnConfig) -> list[tuple[str, str, str, str]]:
    """(holder's parent path, hooked module path, kind, holder name) for every adapter site."""
    blocks = [(p, m) for p, m in model.named_modules() if BLOCKS.match(p)]
    if not blocks:
        raise ValueError(f"found no transformer blocks in {type(model).__name__} (modules named like "
                         "transformer.h.0, model.layers.0 or bert.encoder.layer.0): bottleneck adapters "
                         "need them")
    sites = []
    for path, block in blocks:
        if int(path.rsplit(".", 1)[-1]) in config.leave_out:
            continue
        children = dict(block.named_children())
        post_ln = "output" in children and "intermediate" in children  # BERT: LN inside the SelfOutputs
        if config.output_adapter:
            if post_ln and config.original_ln_before:
                sites.append((f"{path}.output", f"{path}.output", "post_ln", "bottleneck"))
            elif post_ln:  # h -> h + adapter(h) at the dropout, before the SelfOutput's residual + LN
                sites.append((f"{path}.output", f"{path}.output.dropout", "residual", "bottleneck"))
            elif config.original_ln_before:
                sites.append((path, path, "residual", "bottleneck"))
            else:
                mlp = next((c for c in MLP if c in children), None)
                if mlp is None:
                    raise ValueError(f"block {path!r} has no feed-forward child named {MLP}; children: "
                                     f"{sorted(children)}")
                sites.append((f"{path}.{mlp}", f"{path}.{mlp}", "residual", "bottleneck"))
        if config.mh_adapter:
            attn = next((c for c in ATTENTION if c in children), None)
            if attn is None:
                raise ValueError(f"block {path!r} has no attention child named {ATTENTION}; children: "
                                 f"{sorted(children)}")
            host = f"{path}.{attn}.output" if post_ln else f"{path}.{attn}"
            sites.append((host, f"{host}.dropout" if post_ln else host, "residual", "bottleneck"))
    if config.inv_adapter:
        embed, final = _first_existing(model, EMBEDDING_OUTPUTS), _first_existing(model, FINAL_HIDDEN)
        if embed is None or final is None:
            raise ValueError(f"{type(model).__name__}: an invertible adapter needs an embedding output "
                             f"{EMBEDDING_OUTPUTS} and a final hidden state {FINAL_HIDDEN} before a tied "
                             "head")
        sites += [(embed, embed, "embed", "invertible"), (final, final, "final", "invertible")]
    return sites


def inject_bottleneck(model: nn.Module, config: SeqBnConfig, adapter_name: str) -> None:
    """Add adapter `adapter_name` at every site of `config` (creating the holders on first use)."""
    hidden = _hidden_size(model)
    device = next(iter(model.parameters())).device
    sites = _sites(model, config)
    for parent, _, _, child in sites:  # check before changing anything
        layer = model.get_submodule(parent)._modules.get(child)
        if layer is not None and adapter_name in layer.adapters:
            raise ValueError(f"{parent}.{child} already has an adapter named {adapter_name!r}")
    nice = None
    for parent_path, hook_path, kind, child in sites:
        parent = model.get_submodule(parent_path)
        layer = parent._modules.get(child)
        if layer is None:
            layer = BottleneckLayer(f"{parent_path}.{child}", kind, model.get_submodule(hook_path))
            parent.add_module(child, layer)
        if kind in ("embed", "final"):
            if nice is None:  # one coupling serves the forward and the inverse
                nice = NICECoupling(hidden, config.non_linearity, config.inv_adapter_reduction_factor, device)
            module = nice
        else:
            module = Bottleneck(hidden, config, device)
        layer.add(adapter_name, config, module)
