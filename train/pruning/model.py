"""A GPT whose layers may differ in attention heads and MLP width: what structured pruning leaves.

    pruned = PrunableGPT.from_gpt(gpt)               # same weights, per-layer sizes in its config
    prune_layer(pruned, 2, heads=[0, 3], channels=keep)   # train/pruning/structure.py
    save_pruned(pruned, "out/pruned")                # config.json + model.safetensors
    model = load_pruned("out/pruned")                # the same sizes and weights back

PrunableGPTConfig is GPTConfig plus `layer_heads` and `layer_inner` (one entry per layer; None: n_head
and n_inner or 4 n_embd everywhere). The head dim stays n_embd // n_head, so a layer with h heads has
q, k, v of h * head_dim features and its c_proj maps them back to n_embd.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields

from tinyml.models import GPT, GPTConfig
from tinyml.models.transformer.gpt import CausalSelfAttention
from tinyml.models.transformer.layers import attend, init_normal_
from tinyml.models.transformer.mup import mup_init_

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass
class PrunableGPTConfig(GPTConfig):
    layer_heads: list | None = None  # heads of each layer; None: n_head in every layer
    layer_inner: list | None = None  # MLP width of each layer; None: n_inner (or 4 n_embd) in every layer

    def __post_init__(self):
        super().__post_init__()
        full_inner = self.n_inner or 4 * self.n_embd
        L = self.n_layer
        self.layer_heads = list(self.layer_heads) if self.layer_heads is not None else [self.n_head] * L
        self.layer_inner = list(self.layer_inner) if self.layer_inner is not None else [full_inner] * L
        for name, values, top in (("layer_heads", self.layer_heads, self.n_head),
                                  ("layer_inner", self.layer_inner, full_inner)):
            if len(values) != self.n_layer:
                raise ValueError(f"{name} has {len(values)} entries for {self.n_layer} layers: {values}")
            if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top for v in values):
                raise ValueError(f"{name} must hold ints in 1..{top} (n_head / MLP width), got {values}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class PrunableAttention(CausalSelfAttention):
    """CausalSelfAttention with `n_head` heads of `head_dim` each, n_head * head_dim <= n_embd."""

    def __init__(self, cfg: PrunableGPTConfig, n_head: int):
        super().__init__(cfg)
        self.n_head = n_head
        inner = n_head * self.head_dim
        self.c_attn = nn.Linear(cfg.n_embd, 3 * inner, bias=cfg.bias)
        self.c_proj = nn.Linear(inner, cfg.n_embd, bias=cfg.bias)

    def forward(self, x, cache=None, layer: int = 0):
        B, T, _ = x.shape
        H, D = self.n_head, self.head_dim
        if cache is None and not self.qk_layernorm and (self.dropout == 0 or not self.training):
            y = F.scaled_dot_product_attention_packed(self.c_attn(x), H, is_causal=True,
                                                      scale=self.attn_scale)  # (B, T, H*D)
            return self.resid_dropout(self.c_proj(y))
        q, k, v = self.c_attn(x).split(H * D, dim=2)  # 3 x (B, T, H*D)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        if self.qk_layernorm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.attn_scale is not None:
            q = q * (self.attn_scale * D ** 0.5)
        y = attend(q, k, v, causal=True, cache=cache, layer=layer,
                   dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, H * D)))


class PrunableGPT(GPT):
    """GPT with per-layer head counts and MLP widths (config.layer_heads, config.layer_inner)."""

    def __init__(self, config: PrunableGPTConfig):
        if not isinstance(config, PrunableGPTConfig):
            raise TypeError(f"PrunableGPT needs a PrunableGPTConfig, got {type(config).__name__}; "
                            "use PrunableGPT.from_gpt(model) for a GPT")
        super().__init__(config)
        for block, heads, inner in zip(self.transformer.h, config.layer_heads, config.layer_inner):
            block.attn = PrunableAttention(config, heads)
            block.mlp.c_fc = nn.Linear(config.n_embd, inner, bias=config.bias)
            block.mlp.c_proj = nn.Linear(inner, config.n_embd, bias=config.bias)
        # the modules above were made after GPT's init: give them its N(0, 0.02) (and muP) init too
        init_normal_(self, 0.02, config.n_layer)
        if config.mup:
            mup_init_(self)

    @classmethod
    def from_gpt(cls, model: GPT) -> PrunableGPT:
        """The same network, weights copied, as a PrunableGPT (full sizes in every layer)."""
        if isinstance(model, PrunableGPT):
            return model
        cfg = PrunableGPTConfig(**model.config.to_dict())
        out = cls(cfg)
        out.load_state_dict(model.state_dict())
        return out.to(next(iter(model.parameters())).device)


def save_pruned(model: PrunableGPT, folder: str) -> None:
    """Write <folder>/config.json (the config with its per-layer sizes) and <folder>/model.safetensors."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        json.dump({"architecture": "PrunableGPT", **model.config.to_dict()}, f, indent=1)
    tinyml.save(model.state_dict(), os.path.join(folder, WEIGHTS_FILE))


def load_pruned(folder: str) -> PrunableGPT:
    """The model `save_pruned` wrote to `folder`, in eval mode."""
    paths = [os.path.join(folder, f) for f in (CONFIG_FILE, WEIGHTS_FILE)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"load_pruned: {missing[0]} is missing; save_pruned writes {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}")
    with open(paths[0]) as f:
        record = json.load(f)
    if record.pop("architecture", None) != "PrunableGPT":
        raise ValueError(f"{paths[0]} does not describe a PrunableGPT (no \"architecture\": \"PrunableGPT\")")
    known = {f.name for f in fields(PrunableGPTConfig)}
    unknown = sorted(set(record) - known)
    if unknown:
        raise ValueError(f"{paths[0]}: unknown config fields {unknown}")
    model = PrunableGPT(PrunableGPTConfig(**record))
    model.load_state_dict(tinyml.load(paths[1]))
    return model.eval()
