"""Llama style decoder: rotary positions (configurable theta and scaling), RMSNorm, SwiGLU MLP, grouped-query
attention, optional tied embeddings.

    model = Llama(LlamaConfig(vocab_size=256, hidden_size=128, num_hidden_layers=4,
                              num_attention_heads=4, num_key_value_heads=2))
    logits, loss = model(idx, targets)

Module names follow Hugging Face's LlamaForCausalLM (model.embed_tokens, model.layers.0.self_attn
.q_proj, ..., lm_head), so its checkpoints load without renaming. `qk_layernorm` adds an RMSNorm
over the head dim of queries and keys (q_norm / k_norm, as Qwen3 and OLMo-2 name them);
`z_loss` adds the output z-loss (coefficient `z_loss_coef`). `mup=True` with `mup_base_width` (a base
hidden_size) gives the maximal update parametrisation (models/transformer/mup.py).
`rope_scaling` takes transformers' dict ({"rope_type": "linear" | "dynamic" | "llama3", "factor": ...,
...}; see layers.rope_inv_freq).
The Hugging Face adapter at the end of this file reads rope_parameters / rope_scaling as
transformers 5 does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import tinyml.nn as nn
import tinyml.nn.functional as F

from ..hf import HFAdapter, HFMixin, config_path, config_value, register_architecture
from .generate import GenerationMixin
from .layers import KVCache, Rotary, attend, check_rope_scaling, init_normal_, logits_and_loss
from .mup import attention_scale, check_mup_config, mup_init_


@dataclass
class LlamaConfig:
    vocab_size: int = 256
    hidden_size: int = 128
    intermediate_size: int | None = None  # None: the multiple of 32 nearest 8/3 * hidden (SwiGLU's 2/3 of 4x)
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None  # None: as many as query heads (plain multi-head)
    head_dim: int | None = None
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None  # None: the plain rotary embedding
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    dropout: float = 0.0
    qk_layernorm: bool = False
    z_loss: bool = False
    z_loss_coef: float = 1e-4
    mup: bool = False
    mup_base_width: int | None = None  # muP's base hidden_size; None: this width (width_mult 1)

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                                 f"num_attention_heads ({self.num_attention_heads})")
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                             f"num_key_value_heads ({self.num_key_value_heads})")
        if self.intermediate_size is None:
            self.intermediate_size = 32 * round(8 * self.hidden_size / 3 / 32)
        self.rope_scaling = check_rope_scaling(self.rope_scaling, self.max_position_embeddings)
        check_mup_config(self.mup, self.mup_base_width, self.hidden_size)

    @property
    def mup_width_mult(self) -> float:
        """hidden_size / mup_base_width under muP, else 1."""
        return check_mup_config(self.mup, self.mup_base_width, self.hidden_size) if self.mup else 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class LlamaAttention(nn.Module):
    def __init__(self, cfg: LlamaConfig, rotary: Rotary):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        C, D = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(C, self.n_head * D, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(C, self.n_kv * D, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(C, self.n_kv * D, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.n_head * D, C, bias=cfg.attention_bias)
        self.qk_layernorm = cfg.qk_layernorm
        if cfg.qk_layernorm:
            self.q_norm = nn.RMSNorm(D, eps=cfg.rms_norm_eps)
            self.k_norm = nn.RMSNorm(D, eps=cfg.rms_norm_eps)
        self.dropout = cfg.dropout
        # muP: q is scaled so that attend's 1/sqrt(D) becomes sqrt(d_base)/d; None in the standard model
        self.q_mult = attention_scale(D, cfg.mup_width_mult) * D ** 0.5 if cfg.mup else None
        self._rotary = rotary  # shared tables; kept out of the module tree (not a Module)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        B, T, _ = x.shape
        D = self.head_dim
        start = cache.length(layer) if cache is not None else 0
        q = self.q_proj(x).view(B, T, self.n_head, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, D).transpose(1, 2)
        if self.qk_layernorm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self._rotary.apply(q, start), self._rotary.apply(k, start)
        if self.q_mult is not None:
            q = q * self.q_mult
        y = attend(q, k, v, causal=True, cache=cache, layer=layer,
                   dropout_p=self.dropout if self.training else 0.0)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * D))


class LlamaMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        C, I = cfg.hidden_size, cfg.intermediate_size  # noqa: E741
        self.gate_proj = nn.Linear(C, I, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(C, I, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(I, C, bias=cfg.mlp_bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg: LlamaConfig, rotary: Rotary):
        super().__init__()
        self.self_attn = LlamaAttention(cfg, rotary)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = nn.RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        x = x + self.drop(self.self_attn(self.input_layernorm(x), cache, layer))
        return x + self.drop(self.mlp(self.post_attention_layernorm(x)))


class LlamaBody(nn.Module):
    def __init__(self, cfg: LlamaConfig, rotary: Rotary):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg, rotary) for _ in range(cfg.num_hidden_layers)])
        self.norm = nn.RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)


class Llama(nn.Module, HFMixin, GenerationMixin):
    """Llama language model. forward(idx, targets=None, cache=None) -> (logits, loss or None)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.rotary = Rotary(config.head_dim, config.rope_theta, config.max_position_embeddings,
                             config.rope_scaling)
        self.model = LlamaBody(config, self.rotary)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        init_normal_(self, 0.02, config.num_hidden_layers)
        if config.mup:
            mup_init_(self)

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    def new_cache(self) -> KVCache:
        return KVCache(self.config.num_hidden_layers)

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        x = self.model.embed_tokens(idx)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cache, i)
        x = self.model.norm(x)
        if self.config.mup:
            x = x * (1.0 / self.config.mup_width_mult)  # muP's output multiplier: logits / width_mult
        w = self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
        return logits_and_loss(x, w, targets, self.config)


# ---- Hugging Face: LlamaForCausalLM ---------------------------------------------------------------
def _rope(c: dict) -> tuple[float, dict | None]:
    """(rope_theta, rope_scaling) read as transformers 5 reads a Llama config.json: a `rope_scaling`
    dict, when present, replaces `rope_parameters` whole (its rope_theta then comes from the top-level
    rope_theta, else 10000); a top-level original_max_position_embeddings wins for llama3."""
    key = "rope_scaling" if c.get("rope_scaling") else "rope_parameters"
    params = dict(config_value(c, key, "dict", {}))
    theta = params.pop("rope_theta", None)
    if theta is None:
        theta = config_value(c, "rope_theta", "float", 10000.0)
    elif isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise ValueError(f"{config_path(c)}: {key}.rope_theta is {theta!r}; expected a number")
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind in ("llama3", "yarn", "longrope") and "original_max_position_embeddings" in c:
        params["original_max_position_embeddings"] = c["original_max_position_embeddings"]
    if "partial_rotary_factor" in c:
        params.setdefault("partial_rotary_factor", c["partial_rotary_factor"])
    try:
        scaling = check_rope_scaling({**params, "rope_type": kind},
                                     config_value(c, "max_position_embeddings", "int>0", 2048))
    except (ValueError, NotImplementedError) as e:
        raise type(e)(f"{config_path(c)}: {key}: {e}") from None
    return float(theta), scaling


def _config_from_hf(c: dict) -> dict:
    if config_value(c, "hidden_act", "str", "silu") != "silu":
        raise ValueError(f"Llama with hidden_act={c['hidden_act']!r} is not supported (SwiGLU uses silu)")
    theta, scaling = _rope(c)
    heads = config_value(c, "num_attention_heads", "int>0")
    return dict(vocab_size=config_value(c, "vocab_size", "int>0"),
                hidden_size=config_value(c, "hidden_size", "int>0"),
                intermediate_size=config_value(c, "intermediate_size", "int>0"),
                num_hidden_layers=config_value(c, "num_hidden_layers", "int>0"), num_attention_heads=heads,
                num_key_value_heads=config_value(c, "num_key_value_heads", "int>0", heads),
                head_dim=config_value(c, "head_dim", "int>0", None),
                max_position_embeddings=config_value(c, "max_position_embeddings", "int>0", 2048),
                rope_theta=theta, rope_scaling=scaling,
                rms_norm_eps=config_value(c, "rms_norm_eps", "float", 1e-6),
                tie_word_embeddings=config_value(c, "tie_word_embeddings", "bool", False),
                attention_bias=config_value(c, "attention_bias", "bool", False),
                mlp_bias=config_value(c, "mlp_bias", "bool", False))


def _config_to_hf(cfg: LlamaConfig) -> dict:
    if cfg.qk_layernorm or cfg.mup:
        what = "qk-layernorm" if cfg.qk_layernorm else "muP (output multiplier, attention scale)"
        raise ValueError(f"transformers' Llama has no {what}; save this model with tinyml.save")
    rope = {"rope_type": "default", **(cfg.rope_scaling or {}), "rope_theta": cfg.rope_theta}
    return dict(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
                intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_hidden_layers,
                num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
                head_dim=cfg.head_dim, max_position_embeddings=cfg.max_position_embeddings, hidden_act="silu",
                rope_theta=cfg.rope_theta, rope_parameters=rope,
                rms_norm_eps=cfg.rms_norm_eps, tie_word_embeddings=cfg.tie_word_embeddings,
                attention_bias=cfg.attention_bias, mlp_bias=cfg.mlp_bias, attention_dropout=cfg.dropout,
                bos_token_id=None, eos_token_id=None)


def _weights_from_hf(cfg: LlamaConfig, weights: dict) -> dict:
    # rotary inv_freq is a buffer tinyml recomputes; a tied lm_head is the embedding matrix itself
    return {name: w for name, w in weights.items() if not (
        name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and cfg.tie_word_embeddings))}


register_architecture(HFAdapter("LlamaForCausalLM", "llama", Llama, LlamaConfig, _config_from_hf,
                                _config_to_hf, _weights_from_hf))
