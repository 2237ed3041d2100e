"""BERT encoder with the masked-language-model head (post-LayerNorm blocks, GELU, learned
absolute positions and token types, decoder tied to the word embeddings).

    model = BertForMaskedLM(BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=512))
    logits, loss = model(input_ids, attention_mask=mask, labels=labels)   # labels: -100 = ignore

Module names follow Hugging Face's BertForMaskedLM (bert.embeddings.word_embeddings, bert.encoder
.layer.0.attention.self.query, cls.predictions.transform.dense, ...); the adapter at the end of
this file drops the pooler and next-sentence head, which masked-LM does not use.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F
from tinyml.random import default_generator

from ..hf import HFAdapter, HFMixin, config_value, register_architecture
from .layers import LMOutput, activation, attend, init_normal_, lm_loss


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_attention_heads ({self.num_attention_heads})")

    def to_dict(self) -> dict:
        return asdict(self)


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.max_positions = cfg.max_position_embeddings

    def forward(self, input_ids, token_type_ids=None):
        B, T = input_ids.shape
        if T > self.max_positions:
            raise ValueError(f"sequence length {T} exceeds max_position_embeddings {self.max_positions}")
        pos = tinyml.arange(T, device=input_ids.device)
        if token_type_ids is None:
            token_type_ids = tinyml.zeros(B, T, dtype=tinyml.int64, device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(pos)
             + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        C = cfg.hidden_size
        self.n_head, self.head_dim = cfg.num_attention_heads, C // cfg.num_attention_heads
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.dropout = cfg.attention_probs_dropout_prob

    def forward(self, x, attn_mask=None):
        B, T, C = x.shape

        def heads(t):
            return t.view(B, T, self.n_head, self.head_dim).transpose(1, 2)

        y = attend(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)), causal=False,
                   attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, T, C)


class BertSelfOutput(nn.Module):
    """dense, dropout, then LayerNorm of the residual sum (post-LN)."""

    def __init__(self, cfg: BertConfig, d_in: int):
        super().__init__()
        self.dense = nn.Linear(d_in, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg, cfg.hidden_size)

    def forward(self, x, attn_mask=None):
        return self.output(self.self(x, attn_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = activation(cfg.hidden_act)

    def forward(self, x):
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertSelfOutput(cfg, cfg.intermediate_size)

    def forward(self, x, attn_mask=None):
        x = self.attention(x, attn_mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.num_hidden_layers)])


class BertModel(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        """attention_mask: (B, T), 1 for tokens to attend to, 0 for padding."""
        x = self.embeddings(input_ids, token_type_ids)
        mask = None
        if attention_mask is not None:
            B, T = input_ids.shape
            mask = (attention_mask != 0).reshape(B, 1, 1, T)  # broadcasts over heads and queries
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.act = activation(cfg.hidden_act)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(cfg)
        self.bias = nn.Parameter(tinyml.zeros(cfg.vocab_size))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(cfg)


class BertForMaskedLM(nn.Module, HFMixin):
    """forward(input_ids, attention_mask=None, token_type_ids=None, labels=None) -> (logits, loss or None)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.cls = BertOnlyMLMHead(config)
        init_normal_(self, 0.02)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        h = self.bert(input_ids, attention_mask, token_type_ids)
        head = self.cls.predictions
        # The decoder shares the word-embedding matrix (tied), with its own output bias.
        logits = F.linear(head.transform(h), self.bert.embeddings.word_embeddings.weight, head.bias)
        return LMOutput(logits, lm_loss(logits, labels) if labels is not None else None)


def mask_tokens(input_ids, mask_token_id: int, vocab_size: int, mlm_probability: float = 0.15,
                special_ids: tuple = (), rng=None):
    """BERT's masking for MLM training (Devlin et al. 2019, section 3.1), on int numpy arrays:
    each maskable position is chosen with probability `mlm_probability`; a chosen token becomes
    [MASK] 80% of the time, a random token 10%, and stays 10%. Returns (inputs, labels) with
    labels -100 wherever nothing is predicted."""
    rng = rng or default_generator()
    ids = np.array(input_ids, dtype=np.int64, copy=True)
    chosen = rng.random(ids.shape) < mlm_probability
    if special_ids:
        chosen &= ~np.isin(ids, list(special_ids))
    labels = np.where(chosen, ids, -100)
    roll = rng.random(ids.shape)
    ids[chosen & (roll < 0.8)] = mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    ids[swap] = rng.integers(0, vocab_size, size=int(swap.sum()))
    return ids, labels


# ---- Hugging Face: BertForMaskedLM ----------------------------------------------------------------
_FIELD_KINDS = {"int": "int", "float": "float", "str": "str"}  # BertConfig's annotation -> config_value kind


def _config_from_hf(c: dict) -> dict:
    if config_value(c, "position_embedding_type", "str", "absolute") != "absolute":
        raise ValueError(f"BERT position_embedding_type {c['position_embedding_type']!r} is not supported")
    return {f.name: config_value(c, f.name, _FIELD_KINDS[f.type], f.default)
            for f in fields(BertConfig) if f.name in c}


def _config_to_hf(cfg: BertConfig) -> dict:
    return dict(position_embedding_type="absolute", tie_word_embeddings=True, **cfg.to_dict())


def _weights_from_hf(cfg: BertConfig, weights: dict) -> dict:
    out = {}
    for name, w in weights.items():
        if name.startswith(("bert.pooler.", "cls.seq_relationship.")) or name.endswith("position_ids"):
            continue
        if name in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
            continue  # tied to the word embeddings and to cls.predictions.bias
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight")  # TensorFlow-era names
        out[name.replace("LayerNorm.beta", "LayerNorm.bias")] = w
    return out


register_architecture(HFAdapter("BertForMaskedLM", "bert", BertForMaskedLM, BertConfig, _config_from_hf,
                                _config_to_hf, _weights_from_hf))
