"""A GPT whose layers may differ in attention heads, head dims and MLP width, and whose depth and
residual width may be smaller than its source's: what structured pruning leaves.

    pruned = PrunableGPT.from_gpt(gpt)               # same weights, per-layer sizes in its config
    prune_layer(pruned, 2, heads=[0, 3], channels=keep)   # train/pruning/structure.py, axes.py
    save_pruned(pruned, "out/pruned")                # config.json + model.safetensors
    model = PrunableGPT.from_pretrained("out/pruned")    # or load_pruned: the same sizes and weights back

PrunableGPTConfig is GPTConfig plus, one entry per layer, `layer_heads`, `layer_inner` and
`layer_head_dim` (None: n_head, n_inner or 4 n_embd, and head_size everywhere), and `head_size`, the
head dim of the model the pruning started from (None: n_embd // n_head). A layer with h heads of d dims
has q, k, v of h * d features and a c_proj mapping them back to n_embd, the residual width (which
residual-width pruning lowers, so n_embd need not be a multiple of n_head here).

The softmax scale stays the source's, 1/sqrt(head_size) (muP: its sqrt(d_base)/d at head_size), for
every head dim d <= head_size: the score of a pruned head is the sum over its kept dims of q_i k_i,
exactly the source's score with the pruned dims' terms left out, so only the source's scale makes the
pruned model compute what the source computes with those dims zeroed. 1/sqrt(d) would multiply every
logit by sqrt(head_size / d), a sharper softmax the weights were never trained with.

The folder format is registered with tinyml.models' Hugging Face registry as the architecture
"PrunableGPT" (transformers has no such model): `from_pretrained` reads it once this module is imported.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields

from tinyml.models import GPT, GPTConfig
from tinyml.models.hf import HFAdapter, register_architecture, save_pretrained
from tinyml.models.transformer.gpt import CausalSelfAttention
from tinyml.models.transformer.layers import attend, init_normal_
from tinyml.models.transformer.mup import attention_scale, check_mup_config, mup_init_

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
ARCHITECTURE, MODEL_TYPE = "PrunableGPT", "tinyml_pruned_gpt"


def _check_sizes(name: str, values: list, n_layer: int, top: int) -> None:
    if len(values) != n_layer:
        raise ValueError(f"{name} has {len(values)} entries for {n_layer} layers: {values}")
    if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top for v in values):
        raise ValueError(f"{name} must hold ints in 1..{top}, got {values}")


@dataclass
class PrunableGPTConfig(GPTConfig):
    layer_heads: list | None = None  # heads of each layer; None: n_head in every layer
    layer_inner: list | None = None  # MLP width of each layer; None: n_inner (or 4 n_embd) in every layer
    layer_head_dim: list | None = None  # head dim of each layer; None: head_size in every layer
    head_size: int | None = None  # the source's head dim (sets the softmax scale); None: n_embd // n_head

    def __post_init__(self):
        if self.head_size is None:
            super().__post_init__()  # n_embd divisible by n_head: the source's own check
            self.head_size = self.n_embd // self.n_head
        else:  # a pruned residual width need not divide into the source's heads
            if isinstance(self.head_size, bool) or not isinstance(self.head_size, int) or self.head_size < 1:
                raise ValueError(f"head_size must be a positive int, got {self.head_size!r}")
            check_mup_config(self.mup, self.mup_base_width, self.n_embd)
        full_inner = self.n_inner or 4 * self.n_embd
        L = self.n_layer
        self.layer_heads = list(self.layer_heads) if self.layer_heads is not None else [self.n_head] * L
        self.layer_inner = list(self.layer_inner) if self.layer_inner is not None else [full_inner] * L
        self.layer_head_dim = (list(self.layer_head_dim) if self.layer_head_dim is not None
                               else [self.head_size] * L)
        _check_sizes("layer_heads", self.layer_heads, L, self.n_head)
        _check_sizes("layer_inner", self.layer_inner, L, full_inner)
        _check_sizes("layer_head_dim", self.layer_head_dim, L, self.head_size)


def source_scale(cfg: PrunableGPTConfig, head_dim: int) -> float | None:
    """The softmax scale of a head of `head_dim` dims: the source's, 1/sqrt(head_size) (muP: its
    sqrt(d_base)/d), whatever head_dim is. None (the kernels' own 1/sqrt(D), the same bit for bit) where
    head_dim is the source's."""
    if cfg.mup:
        return attention_scale(cfg.head_size, cfg.mup_width_mult)
    return None if head_dim == cfg.head_size else 1.0 / math.sqrt(cfg.head_size)


class PrunableAttention(CausalSelfAttention):
    """CausalSelfAttention with `n_head` heads of `head_dim` dims each, softmax scale of the source's
    head_size (see the module docstring)."""

    def __init__(self, cfg: PrunableGPTConfig, n_head: int, head_dim: int):
        super().__init__(cfg)
        self.n_head, self.head_dim = n_head, head_dim
        inner = n_head * head_dim
        self.c_attn = nn.Linear(cfg.n_embd, 3 * inner, bias=cfg.bias)
        self.c_proj = nn.Linear(inner, cfg.n_embd, bias=cfg.bias)
        if cfg.qk_layernorm:  # over the layer's head dim
            self.q_norm = nn.LayerNorm(head_dim, eps=cfg.layer_norm_eps)
            self.k_norm = nn.LayerNorm(head_dim, eps=cfg.layer_norm_eps)
        self.attn_scale = source_scale(cfg, head_dim)

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
            q = q * (self.attn_scale * D ** 0.5)  # attend divides by sqrt(D): the product is attn_scale
        y = attend(q, k, v, causal=True, cache=cache, layer=layer,
                   dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, H * D)))


class PrunableGPT(GPT):
    """GPT with per-layer head counts, head dims and MLP widths (config.layer_heads, layer_head_dim,
    layer_inner); n_layer and n_embd are what pruning left."""

    def __init__(self, config: PrunableGPTConfig):
        if not isinstance(config, PrunableGPTConfig):
            raise TypeError(f"PrunableGPT needs a PrunableGPTConfig, got {type(config).__name__}; "
                            "use PrunableGPT.from_gpt(model) for a GPT")
        super().__init__(config)
        for block, heads, dim, inner in zip(self.transformer.h, config.layer_heads, config.layer_head_dim,
                                            config.layer_inner):
            block.attn = PrunableAttention(config, heads, dim)
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


_FOLDER_KEYS = ("architectures", "dtype", "model_type")  # what save_pretrained adds to the config


def _config_from_record(record: dict, path: str) -> dict:
    known = {f.name for f in fields(PrunableGPTConfig)}
    unknown = sorted(set(record) - known - set(_FOLDER_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown config fields {unknown}")
    return {k: v for k, v in record.items() if k in known}


register_architecture(HFAdapter(
    ARCHITECTURE, MODEL_TYPE, PrunableGPT, PrunableGPTConfig,
    config_from_hf=lambda c: _config_from_record(c, getattr(c, "path", CONFIG_FILE)),
    config_to_hf=lambda cfg: cfg.to_dict()))


def save_pruned(model: PrunableGPT, folder: str) -> None:
    """Write <folder>/config.json (the config with its per-layer sizes) and <folder>/model.safetensors:
    model.save_pretrained(folder), which PrunableGPT.from_pretrained and load_pruned read back."""
    if not isinstance(model, PrunableGPT):
        raise TypeError(f"save_pruned needs a PrunableGPT, got {type(model).__name__}")
    save_pretrained(model, folder)


def load_pruned(folder: str) -> PrunableGPT:
    """The model `save_pruned` wrote to `folder`, in eval mode (also the older files whose config.json
    says "architecture": "PrunableGPT" instead of save_pretrained's "architectures")."""
    paths = [os.path.join(folder, f) for f in (CONFIG_FILE, WEIGHTS_FILE)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"load_pruned: {missing[0]} is missing; save_pruned writes {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}")
    with open(paths[0]) as f:
        record = json.load(f)
    if ARCHITECTURE in (record.get("architectures") or []):
        return PrunableGPT.from_pretrained(folder)
    if record.pop("architecture", None) != ARCHITECTURE:
        raise ValueError(f"{paths[0]} does not describe a PrunableGPT (its architectures are "
                         f"{record.get('architectures')})")
    model = PrunableGPT(PrunableGPTConfig(**_config_from_record(record, paths[0])))
    model.load_state_dict(tinyml.load(paths[1]))
    return model.eval()
