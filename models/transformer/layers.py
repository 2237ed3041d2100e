"""Pieces shared by the transformer models: the KV cache, causal attention over it, rotary
position embeddings (with transformers' rope scalings), the language-model head and loss with the
optional z-loss, activations by config name, and GPT-2's initialisation.

Shapes: B batch, T new tokens, S = past + T keys, H query heads, Hkv key/value heads, D head dim.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F


class KVCache:
    """Keys and values of every layer for the tokens seen so far, grown by concatenation.

    `seq_len` is the number of cached positions, the position offset of the next tokens."""

    def __init__(self, n_layer: int):
        self.keys: list = [None] * n_layer
        self.values: list = [None] * n_layer

    @property
    def seq_len(self) -> int:
        k = self.keys[0]
        return 0 if k is None else k.shape[2]

    def length(self, layer: int) -> int:
        """Positions cached for `layer`: the position offset of its next tokens. Within a forward,
        `seq_len` (layer 0's count) is already ahead for every later layer."""
        k = self.keys[layer]
        return 0 if k is None else k.shape[2]

    def update(self, layer: int, k, v):
        """Append this step's (B, Hkv, T, D) keys and values; return all of them (B, Hkv, S, D)."""
        if self.keys[layer] is not None:
            k = tinyml.cat([self.keys[layer], k], dim=2)
            v = tinyml.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


def _causal_mask(t: int, s: int, device) -> tinyml.Tensor:
    """(T, S) bool, True where query i (at absolute position S-T+i) may attend key j: j <= S-T+i.
    Only needed when new tokens follow cached ones; without a cache `is_causal` does the same."""
    m = np.tril(np.ones((t, s), dtype=bool), k=s - t)
    return tinyml.tensor(m, device=device)


def attend(q, k, v, *, causal: bool, cache: KVCache | None = None, layer: int = 0,
           attn_mask=None, dropout_p: float = 0.0):
    """Scaled dot-product attention of q (B, H, T, D) over k, v (B, Hkv, T, D), after appending
    k, v to `cache`. Grouped-query attention: each of the Hkv heads serves H / Hkv query heads.
    Returns (B, H, T, D)."""
    if cache is not None:
        k, v = cache.update(layer, k, v)
    B, H, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    if Hkv != H:
        # (B, Hkv, S, D) -> (B, Hkv, H/Hkv, S, D) -> (B, H, S, D): query head h uses kv head h // (H/Hkv)
        g = H // Hkv
        k = k.unsqueeze(2).expand(B, Hkv, g, S, D).reshape(B, H, S, D)
        v = v.unsqueeze(2).expand(B, Hkv, g, S, D).reshape(B, H, S, D)
    is_causal = causal and attn_mask is None and S == T
    if causal and not is_causal:
        cm = _causal_mask(T, S, q.device)
        attn_mask = cm if attn_mask is None else (attn_mask & cm)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal)


# rope_type -> the keys its `rope_scaling` dict needs (besides rope_type): transformers' names and maths
ROPE_SCALINGS = {"linear": ("factor",), "dynamic": ("factor",), "llama3": (
    "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


def check_rope_scaling(scaling: dict | None, max_positions: int) -> dict | None:
    """A rotary scaling dict in transformers' layout ({"rope_type": "linear", "factor": 2.0, ...}),
    checked: NotImplementedError for a rope_type tinyml does not implement, ValueError for a missing
    or non-numeric key. Returns a copy with llama3's original_max_position_embeddings defaulted to
    max_positions (as transformers does), or None for the plain rotary embedding."""
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise ValueError(f"rope_scaling must be a dict such as {{'rope_type': 'linear', 'factor': 2.0}}, "
                         f"got {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return None
    if kind not in ROPE_SCALINGS:
        raise NotImplementedError(f"rope_type {kind!r} is not implemented in tinyml; supported: default, "
                                  f"{', '.join(ROPE_SCALINGS)}")
    if "rope_theta" in scaling:  # two places for one number invite disagreement
        raise ValueError(f"rope_scaling holds rope_theta={scaling['rope_theta']!r}; give it as the config's "
                         "rope_theta instead")
    out = {"rope_type": kind, **{k: v for k, v in scaling.items() if k not in ("rope_type", "type")}}
    if kind == "llama3":
        out.setdefault("original_max_position_embeddings", max_positions)
    for key in ROPE_SCALINGS[kind]:
        v = out.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ValueError(f"rope_type {kind!r} needs a positive number {key!r}, got {v!r}")
    if kind == "llama3" and out["low_freq_factor"] == out["high_freq_factor"]:
        raise ValueError(f"rope_type 'llama3' needs low_freq_factor != high_freq_factor, both are "
                         f"{out['low_freq_factor']}")
    if out.get("partial_rotary_factor", 1.0) != 1.0:
        raise NotImplementedError(f"partial_rotary_factor={out['partial_rotary_factor']} is not implemented "
                                  "(tinyml rotates the whole head dim)")
    return out


def rope_inv_freq(head_dim: int, theta: float, scaling: dict | None = None, max_positions: int = 2048,
                  seq_len: int | None = None) -> np.ndarray:
    """Inverse frequencies (head_dim/2,) in float32, computed as transformers computes them:
    default   inv_i = theta^(-2i/D)
    linear    inv_i / factor                      (positions interpolated by `factor`)
    dynamic   theta' = theta * (factor * L / max_positions - (factor - 1))^(D / (D - 2)), L = max(seq_len,
              max_positions): NTK-aware, grows with the sequence, the default below max_positions
    llama3    wavelength 2 pi / inv_i above original/low_freq_factor: inv_i / factor; below
              original/high_freq_factor: inv_i; between: s * inv_i + (1 - s) * inv_i / factor with
              s = (original / wavelength - low) / (high - low)."""
    kind = scaling["rope_type"] if scaling else "default"
    base = float(theta)
    if kind == "dynamic":
        f, length = scaling["factor"], max(seq_len or max_positions, max_positions)
        base = base * ((f * length / max_positions) - (f - 1)) ** (head_dim / (head_dim - 2))
    inv = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    if kind == "linear":
        inv = inv / np.float32(scaling["factor"])
    elif kind == "llama3":
        f, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / low, inv / f, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / f + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        inv = np.where(medium, smoothed, scaled)
    return inv.astype(np.float32)


def _cos_sin(inv_freq: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    ang = np.arange(start, end, dtype=np.float32)[:, None] * inv_freq[None, :]
    ang = np.concatenate([ang, ang], axis=-1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


class Rotary:
    """Rotary position embedding tables (Su et al., the Llama / Hugging Face "rotate half" layout):
    for pair i of the head dim, angle_(p,i) = p * inv_i (inv_i = theta^(-2i/D) unless `scaling`
    says otherwise, see rope_inv_freq), and

        rope(x)_p = x_p * cos(angle_p) + rotate_half(x_p) * sin(angle_p),
        rotate_half([x1, x2]) = [-x2, x1]   (x1, x2 the two halves of the head dim).

    The tables are plain host arrays, moved to a device on first use: they are not parameters and
    stay out of state_dict (Hugging Face's checkpoints do not store them either). With "dynamic"
    scaling a sequence longer than max_positions gets tables for its own length, as transformers'
    model does while the sequence grows (it also keeps a grown table for later calls between the
    two lengths; tinyml's tables depend only on the current length)."""

    def __init__(self, head_dim: int, theta: float = 10000.0, max_positions: int = 2048,
                 scaling: dict | None = None):
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dim, got {head_dim}")
        self.head_dim, self.theta, self.max_positions = head_dim, float(theta), max_positions
        self.scaling = check_rope_scaling(scaling, max_positions)
        if self.scaling and self.scaling["rope_type"] == "dynamic" and head_dim <= 2:
            raise ValueError(f"dynamic rope scaling needs a head dim above 2 (its exponent is D / (D - 2)), "
                             f"got {head_dim}")
        self.inv_freq = rope_inv_freq(head_dim, self.theta, self.scaling, max_positions)
        self._grow(max_positions)

    def _grow(self, n: int) -> None:
        self.cos_np, self.sin_np = _cos_sin(self.inv_freq, 0, n)
        self._dev: dict = {}

    def tables(self, start: int, length: int, device, dtype):
        end = start + length
        if self.scaling and self.scaling["rope_type"] == "dynamic" and end > self.max_positions:
            inv = rope_inv_freq(self.head_dim, self.theta, self.scaling, self.max_positions, seq_len=end)
            cos, sin = _cos_sin(inv, start, end)
            return tinyml.tensor(cos, device=device).to(dtype), tinyml.tensor(sin, device=device).to(dtype)
        if end > self.cos_np.shape[0]:
            self._grow(max(end, 2 * self.cos_np.shape[0]))
        key = (str(device), str(dtype))
        if key not in self._dev:
            self._dev[key] = (tinyml.tensor(self.cos_np, device=device).to(dtype),
                              tinyml.tensor(self.sin_np, device=device).to(dtype))
        cos, sin = self._dev[key]
        return cos[start:end], sin[start:end]

    def apply(self, x, start: int):
        """x: (B, H, T, D), positions start .. start+T-1."""
        T, D = x.shape[2], x.shape[3]
        cos, sin = self.tables(start, T, x.device, x.dtype)
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cos + tinyml.cat([-x2, x1], dim=-1) * sin


def lm_loss(logits, targets, z_loss_coef: float = 0.0, ignore_index: int = -100):
    """Mean cross-entropy of logits (..., V) against targets (...), skipping `ignore_index`; with
    z_loss_coef > 0 adds coef * mean(logsumexp(logits)^2) (PaLM's z-loss, used by Wortsman et al.,
    "Small-scale proxies for large-scale Transformer training instabilities", at 1e-4), which keeps
    the softmax normaliser near 1 so logits cannot drift upward."""
    V = logits.shape[-1]
    flat, tgt = logits.reshape(-1, V), targets.reshape(-1)
    if flat.dtype in (tinyml.bfloat16, tinyml.float16):
        flat = flat.float()  # under autocast: the softmax and its log in float32, as torch's autocast does
    loss = F.cross_entropy(flat, tgt, ignore_index=ignore_index)
    if z_loss_coef:
        lse = flat.logsumexp(dim=-1)
        keep = (tgt != ignore_index).to(lse.dtype)
        loss = loss + z_loss_coef * (lse * lse * keep).sum() / keep.sum().clamp(min=1.0)
    return loss


class LMOutput(NamedTuple):
    """What a language model's forward returns, as Hugging Face's outputs name it: `out.logits`
    (B, T, V) and `out.loss` (None without targets); it still unpacks as `logits, loss = model(...)`."""
    logits: tinyml.Tensor
    loss: tinyml.Tensor | None = None


def logits_and_loss(x, weight, targets, cfg):
    """A causal LM's output head: logits = x @ weight^T (B, T, V), and lm_loss against targets with
    cfg's z-loss (cfg.z_loss, cfg.z_loss_coef), or None without targets."""
    logits = F.linear(x, weight)
    if targets is None:
        return LMOutput(logits, None)
    return LMOutput(logits, lm_loss(logits, targets, cfg.z_loss_coef if cfg.z_loss else 0.0))


def gelu_new(x):
    """GPT-2's GELU, the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": gelu_new,
    "relu": lambda x: F.relu(x),
    "silu": lambda x: F.silu(x),
}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def init_normal_(module, std: float = 0.02, n_layer: int | None = None) -> None:
    """GPT-2 / Llama initialisation: N(0, std) for linear and embedding weights, zero biases,
    and residual output projections scaled by 1/sqrt(2 n_layer) (GPT-2 paper, section 2.3)."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            residual_out = n_layer and name.endswith(("c_proj", "o_proj", "down_proj"))
            s = std / math.sqrt(2 * n_layer) if residual_out else std
            nn.init.normal_(m.weight, mean=0.0, std=s)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
