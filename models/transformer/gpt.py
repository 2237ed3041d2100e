"""GPT-2 style decoder: learned positions, pre-LayerNorm blocks, GELU MLP, tied embeddings.

    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
    logits, loss = model(idx, targets)        # idx, targets: (B, T) int64

Module names follow Hugging Face's GPT2LMHeadModel (transformer.wte, transformer.h.0.attn.c_attn,
...) so its checkpoints map one to one; its Conv1D weights are stored (in, out) and are
transposed on load and save by the adapter at the end of this file. Options from Wortsman et al.
2023: `qk_layernorm` (LayerNorm over the head dim of queries and keys) and `z_loss` (coefficient
`z_loss_coef`). `mup=True` with `mup_base_width` gives the maximal update parametrisation (init,
output multiplier and attention scale here; per-layer learning rates: models/transformer/mup.py).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F
from tinyml.ops.norm import add_layer_norm

from ..hf import HFAdapter, HFMixin, config_value, register_architecture
from .generate import GenerationMixin
from .layers import KVCache, activation, attend, init_normal_, logits_and_loss
from .mup import attention_scale, check_mup_config, mup_init_


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_new"
    tie_word_embeddings: bool = True
    qk_layernorm: bool = False
    z_loss: bool = False
    z_loss_coef: float = 1e-4
    mup: bool = False
    mup_base_width: int | None = None  # muP's base n_embd; None: this width (width_mult 1)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        check_mup_config(self.mup, self.mup_base_width, self.n_embd)

    @property
    def mup_width_mult(self) -> float:
        """n_embd / mup_base_width under muP, else 1."""
        return check_mup_config(self.mup, self.mup_base_width, self.n_embd) if self.mup else 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        C = cfg.n_embd
        self.n_head, self.head_dim = cfg.n_head, C // cfg.n_head
        self.c_attn = nn.Linear(C, 3 * C, bias=cfg.bias)
        self.c_proj = nn.Linear(C, C, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.qk_layernorm = cfg.qk_layernorm
        if cfg.qk_layernorm:
            self.q_norm = nn.LayerNorm(self.head_dim, eps=cfg.layer_norm_eps)
            self.k_norm = nn.LayerNorm(self.head_dim, eps=cfg.layer_norm_eps)
        # softmax scale: None is 1/sqrt(head_dim); muP's sqrt(d_base)/d otherwise
        self.attn_scale = attention_scale(self.head_dim, cfg.mup_width_mult) if cfg.mup else None

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.shape
        H, D = self.n_head, self.head_dim
        if cache is None and not self.qk_layernorm and (self.dropout == 0 or not self.training):
            # the fused kernel reads q, k, v from (B, T, 3, H, D) and writes (B, T, H*D):
            # no split, head transposes or copies in the graph
            y = F.scaled_dot_product_attention_packed(self.c_attn(x), H, is_causal=True,
                                                      scale=self.attn_scale)  # (B, T, C)
            return self.resid_dropout(self.c_proj(y))
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)
        k = k.view(B, T, H, D).transpose(1, 2)
        v = v.view(B, T, H, D).transpose(1, 2)
        if self.qk_layernorm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.attn_scale is not None:
            q = q * (self.attn_scale * D ** 0.5)  # attend divides by sqrt(D): the product is attn_scale
        y = attend(q, k, v, causal=True, cache=cache, layer=layer,
                   dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        inner = cfg.n_inner or 4 * cfg.n_embd
        self.c_fc = nn.Linear(cfg.n_embd, inner, bias=cfg.bias)
        self.c_proj = nn.Linear(inner, cfg.n_embd, bias=cfg.bias)
        self.act = activation(cfg.activation)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))

    def forward_fused(self, x, h, next_ln: nn.LayerNorm, cache: KVCache | None = None, layer: int = 0):
        """forward(x) with each residual add fused with the layer_norm that reads its sum: h is
        ln_1(x) (computed by the previous block's last add), and the result is (x_out,
        next_ln(x_out)). Same bits as forward; GPT.forward uses it when no hook would notice."""
        h, x = add_layer_norm(x, self.attn(h, cache, layer), self.ln_2.normalized_shape, self.ln_2.weight,
                              self.ln_2.bias, self.ln_2.eps)  # (B, T, C) each
        h, x = add_layer_norm(x, self.mlp(h), next_ln.normalized_shape, next_ln.weight, next_ln.bias,
                              next_ln.eps)
        return x, h


def _no_hooks(*modules) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in modules)


class GPTBody(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)


class GPT(nn.Module, HFMixin, GenerationMixin):
    """GPT-2 language model. forward(idx, targets=None, cache=None) -> (logits, loss or None)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = GPTBody(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        init_normal_(self, 0.02, config.n_layer)
        if config.mup:
            mup_init_(self)

    @property
    def max_positions(self) -> int:
        return self.config.block_size

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layer)

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        B, T = idx.shape
        start = cache.seq_len if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than the model's block_size "
                             f"{self.config.block_size} (learned positions end there)")
        tr = self.transformer
        pos = tinyml.arange(start, start + T, device=idx.device)
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))
        blocks = list(tr.h)
        if blocks and type(tr.ln_f) is nn.LayerNorm and _no_hooks(tr.ln_f) and all(
                type(b) is Block and type(b.ln_1) is nn.LayerNorm and type(b.ln_2) is nn.LayerNorm
                and _no_hooks(b, b.ln_1, b.ln_2) for b in blocks):
            # residual adds fused with the next layer_norm (ln_2, the next block's ln_1, ln_f):
            # 2 kernels and a pass over the stream fewer per add, the same bits
            h = blocks[0].ln_1(x)
            for i, block in enumerate(blocks):
                x, h = block.forward_fused(x, h, blocks[i + 1].ln_1 if i + 1 < len(blocks) else tr.ln_f,
                                           cache, i)
            x = h
        else:
            for i, block in enumerate(tr.h):
                x = block(x, cache, i)
            x = tr.ln_f(x)
        if self.config.mup:
            x = x * (1.0 / self.config.mup_width_mult)  # muP's output multiplier: logits / width_mult
        w = tr.wte.weight if self.config.tie_word_embeddings else self.lm_head.weight
        return logits_and_loss(x, w, targets, self.config)

    def num_parameters(self, exclude_positions: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if exclude_positions else n


# ---- Hugging Face: GPT2LMHeadModel ----------------------------------------------------------------
_CONV1D = re.compile(r"\.(c_attn|c_proj|c_fc)\.weight$")  # transformers' Conv1D: weight stored (in, out)


def _config_from_hf(c: dict) -> dict:
    if config_value(c, "add_cross_attention", "bool", False):
        raise ValueError("GPT-2 with cross-attention is not supported (add_cross_attention=true)")
    if (config_value(c, "scale_attn_by_inverse_layer_idx", "bool", False)
            or not config_value(c, "scale_attn_weights", "bool", True)):
        raise ValueError("GPT-2 attention scaling options other than 1/sqrt(head_dim) are not supported")
    return dict(vocab_size=config_value(c, "vocab_size", "int>0"),
                block_size=config_value(c, "n_positions", "int>0", config_value(c, "n_ctx", "int>0", 1024)),
                n_layer=config_value(c, "n_layer", "int>0"), n_head=config_value(c, "n_head", "int>0"),
                n_embd=config_value(c, "n_embd", "int>0"), n_inner=config_value(c, "n_inner", "int>0", None),
                layer_norm_eps=config_value(c, "layer_norm_epsilon", "float", 1e-5),
                activation=config_value(c, "activation_function", "str", "gelu_new"),
                tie_word_embeddings=config_value(c, "tie_word_embeddings", "bool", True), dropout=0.0)


def _config_to_hf(cfg: GPTConfig) -> dict:
    if cfg.qk_layernorm or cfg.mup:
        what = "qk-layernorm" if cfg.qk_layernorm else "muP (output multiplier, attention scale)"
        raise ValueError(f"transformers' GPT2 has no {what}; save this model with tinyml.save")
    return dict(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                n_head=cfg.n_head, n_inner=cfg.n_inner, activation_function=cfg.activation,
                layer_norm_epsilon=cfg.layer_norm_eps, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                attn_pdrop=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings, bos_token_id=None,
                eos_token_id=None)


def _weights_from_hf(cfg: GPTConfig, weights: dict) -> dict:
    out = {}
    for name, w in weights.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # causal-mask buffers of old checkpoints
        if not name.startswith(("transformer.", "lm_head.")):
            name = "transformer." + name  # the original OpenAI checkpoints have no prefix
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        out[name] = w.T if _CONV1D.search(name) else w  # Linear is (out, in)
    return out


def _weights_to_hf(cfg: GPTConfig, state: dict) -> dict:
    return {name: w.T if _CONV1D.search(name) else w for name, w in state.items()}


register_architecture(HFAdapter("GPT2LMHeadModel", "gpt2", GPT, GPTConfig, _config_from_hf, _config_to_hf,
                                _weights_from_hf, _weights_to_hf))
