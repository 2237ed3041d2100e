"""Ladder Side-Tuning (Sung et al. 2022, "LST: Ladder Side-Tuning for Parameter and Memory Efficient
Transfer Learning"): a small side network beside a frozen backbone, fed by every backbone layer.

    e, h_1 .. h_N        the backbone's embedding output and block outputs (d wide), frozen
    s_0 = down_0(e)                                                    side width d_s = d / r
    z_i = mu_i * down_i(h_i) + (1 - mu_i) * s_(i-1),  mu_i = sigmoid(alpha_i / T), alpha_i = 0, T = 0.1
    s_i = side_block_i(z_i)                    a pre-norm transformer block of width d_s
    out = final + up(norm(s_N))                 final: the backbone's last hidden state, before its head

The backbone's parameters are frozen and its inputs need no gradient, so it records no graph:
backward runs through the side network and the head only, and no backbone activation is kept.
Side blocks start from the backbone's, structurally pruned by weight magnitude (L1, init="magnitude")
or by Fisher information (init="fisher": squared gradients of the loss over `fisher_batches`, as in
the LST paper; ladder_fisher.py): the d_s residual channels, the head dims (D / r per head, q and k
together) and the MLP units (I / r) with the largest scores are kept; the down projections start as
the selection of those channels, and `up` at zero, so training starts from the pruned backbone's
path. `drop_layers` leaves out the side blocks (and ladder rungs) of those backbone layers.

The structure is read from module names and the model's config: blocks transformer.h.N /
model.layers.N / bert.encoder.layer.N; attention c_attn + c_proj | q_proj, k_proj, v_proj, o_proj |
query, key, value + attention.output.dense; MLP c_fc + mlp.c_proj | gate_proj, up_proj, down_proj |
intermediate.dense + output.dense; heads from config.n_head / num_attention_heads (and
num_key_value_heads). With a KV cache (PeftModel passes the backbone's cache in) the side network
keeps one of its own, so generation with the cache matches the uncached path.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from ..transformer.layers import KVCache, attend
from .bottleneck import BLOCKS, EMBEDDING_OUTPUTS, FINAL_HIDDEN, _first_existing
from .ladder_fisher import fisher_information
from .ladder_prune import BlockWeights, block_weights, prune_block
from .tuner import AdapterLayer


@dataclass
class LSTConfig:
    reduction_factor: int = 8
    gate_alpha: float = 0.0
    gate_temperature: float = 0.1
    init: str = "magnitude"  # or "fisher" (needs fisher_batches) or "random"
    drop_layers: list[int] = field(default_factory=list)
    peft_type: str = "LST"
    # init="fisher": the batches (model(*batch) -> (logits, loss), e.g. (idx, targets)) whose squared
    # gradients score the backbone's weights, and optionally fisher_loss(model, batch) -> scalar loss;
    # used once at injection and not saved with the adapter
    fisher_batches: list | None = field(default=None, repr=False, compare=False)
    fisher_loss: Callable | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.init not in ("magnitude", "fisher", "random"):
            raise ValueError(f"LSTConfig.init must be 'magnitude', 'fisher' or 'random', got {self.init!r}")
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 1:
            raise ValueError(f"reduction_factor must be a positive integer, got {self.reduction_factor!r}")
        if not self.gate_temperature > 0:
            raise ValueError(f"gate_temperature must be positive, got {self.gate_temperature}")

    def inject(self, model: nn.Module, adapter_name: str) -> None:
        inject_ladder(model, self, adapter_name)


class SideAttention(nn.Module):
    def __init__(self, w: BlockWeights, causal: bool):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim, self.causal = w.n_head, w.n_kv, w.head_dim, causal
        self.q, self.k, self.v, self.o = (_linear(w.q, w.q_b), _linear(w.k, w.k_b), _linear(w.v, w.v_b),
                                          _linear(w.o, w.o_b))

    def forward(self, x, cache: KVCache | None, layer: int):
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = self.k(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        v = self.v(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        y = attend(q, k, v, causal=self.causal, cache=cache, layer=layer)
        return self.o(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))


class SideBlock(nn.Module):
    """Pre-norm block of width d_s: x + attn(norm1(x)), then + mlp(norm2(x))."""

    def __init__(self, w: BlockWeights, causal: bool):
        super().__init__()
        self.norm1, self.norm2 = _norm(w.norm1, w.norm1_b, w.rms), _norm(w.norm2, w.norm2_b, w.rms)
        self.attn = SideAttention(w, causal)
        self.fc, self.proj = _linear(w.fc, w.fc_b), _linear(w.proj, w.proj_b)
        self.gate = _linear(w.gate, None) if w.gate is not None else None
        self.exact_gelu = w.exact_gelu

    def forward(self, x, cache: KVCache | None, layer: int):
        x = x + self.attn(self.norm1(x), cache, layer)
        h = self.norm2(x)
        if self.gate is not None:  # SwiGLU, as Llama's MLP
            inner = F.silu(self.gate(h)) * self.fc(h)
        else:
            inner = F.gelu(self.fc(h), approximate="none" if self.exact_gelu else "tanh")
        return x + self.proj(inner)


class SideNetwork(nn.Module):
    def __init__(self, model: nn.Module, config: LSTConfig, layers: list[tuple[int, nn.Module]], final_norm):
        super().__init__()
        r = config.reduction_factor
        cfg = model.config
        weights = [block_weights(block, cfg) for _, block in layers]
        d = weights[0].d
        if d % r or d // r < 1:
            raise ValueError(f"hidden size {d} is not divisible by reduction_factor {r}")
        scores = weights  # magnitude: |w| ranks
        if config.init == "fisher":
            fisher = fisher_information(model, [p for _, b in layers for p in b.parameters() if p.ndim == 2],
                                        config.fisher_batches, config.fisher_loss)
            scores = [block_weights(block, cfg, fisher) for _, block in layers]
        channels = _top_channels(scores, d // r) if config.init != "random" else np.arange(d // r)
        pruned = [prune_block(w, channels, r, config.init != "random", s) for w, s in zip(weights, scores)]
        self.layer_ids = [i for i, _ in layers]
        self.temperature = config.gate_temperature
        self.down = nn.ModuleList([_selection(channels, d, config.init != "random")
                                   for _ in range(len(layers) + 1)])
        self.blocks = nn.ModuleList([SideBlock(w, causal=w.causal) for w in pruned])
        self.alpha = nn.Parameter(tinyml.full((len(layers),), float(config.gate_alpha)))
        norm_w = final_norm.weight.detach().numpy()[channels] if final_norm is not None else np.ones(d // r)
        self.norm = _norm(norm_w.astype(np.float32), None, pruned[0].rms)
        self.up = nn.Linear(d // r, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def gates(self):
        """mu_i = sigmoid(alpha_i / T)."""
        return F.sigmoid(self.alpha / self.temperature)

    def forward(self, taps: dict, final, cache: KVCache | None):
        s = self.down[0](taps[-1])
        mu = self.gates()
        for j, (i, block) in enumerate(zip(self.layer_ids, self.blocks)):
            z = mu[j] * self.down[j + 1](taps[i]) + (1 - mu[j]) * s
            s = block(z, cache, j)
        return final + self.up(self.norm(s))


def _linear(w: np.ndarray, b: np.ndarray | None) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with tinyml.no_grad():
        lin.weight.copy_(tinyml.tensor(w, dtype=tinyml.float32))
        if b is not None:
            lin.bias.copy_(tinyml.tensor(b, dtype=tinyml.float32))
    return lin


def _norm(w: np.ndarray, b: np.ndarray | None, rms: bool) -> nn.Module:
    norm = nn.RMSNorm(w.shape[0], eps=1e-6) if rms else nn.LayerNorm(w.shape[0], bias=b is not None)
    with tinyml.no_grad():
        norm.weight.copy_(tinyml.tensor(w, dtype=tinyml.float32))
        if b is not None:
            norm.bias.copy_(tinyml.tensor(b, dtype=tinyml.float32))
    return norm


def _top_channels(weights: list[BlockWeights], n: int) -> np.ndarray:
    """The n residual channels with the largest summed |w| (or Fisher information, when `weights`
    hold scores) over every block's reads and writes."""
    score = sum(w.channel_importance() for w in weights)
    return np.sort(np.argsort(-score, kind="stable")[:n])


def _selection(channels: np.ndarray, d: int, select: bool) -> nn.Linear:
    """down: d -> d_s, starting as the selection of `channels` (pruned inits) or at random."""
    lin = nn.Linear(d, len(channels), bias=False)
    if select:
        sel = np.zeros((len(channels), d), dtype=np.float32)
        sel[np.arange(len(channels)), channels] = 1.0
        with tinyml.no_grad():
            lin.weight.copy_(tinyml.tensor(sel))
    return lin


class LadderSideLayer(nn.Module, AdapterLayer):
    """Holds the side networks (one per adapter name) and the hooks that feed and apply them."""

    adapter_containers = ("side",)

    def __init__(self, model: nn.Module, embed: str, blocks: list[str], final: str):
        super().__init__()
        self._init_adapter_state("ladder_side")
        self.side = nn.ModuleDict()
        d = self.__dict__
        d["_taps"], d["_cache"], d["_side_caches"] = {}, None, weakref.WeakKeyDictionary()
        d["_handles"] = [model.get_submodule(embed).register_forward_hook(self._tap(-1))]
        d["_handles"] += [model.get_submodule(p).register_forward_hook(self._tap(i))
                          for i, p in enumerate(blocks)]
        d["_handles"].append(model.get_submodule(final).register_forward_hook(self._apply))
        d["n_blocks"] = len(blocks)

    def adapter_parameters(self, name: str):
        return list(self.side[name].parameters()) if name in self.side else []

    def delete_adapter(self, name: str) -> None:
        self.side.pop(name)
        self.adapters.pop(name)
        self.__dict__["active_adapters"] = [n for n in self.active_adapters if n != name]

    def bind_cache(self, cache) -> None:
        """The backbone's KV cache for the next forward (None: no cache)."""
        self.__dict__["_cache"] = cache

    def _tap(self, index: int):
        def hook(module, args, out):
            if not self.disabled and self.active_adapters:
                self._taps[index] = out.detach()
        return hook

    def _apply(self, module, args, out):
        if self.disabled or not self.active_adapters:
            return None
        taps = dict(self._taps)
        self._taps.clear()
        side_cache = None
        if self._cache is not None:
            side_cache = self._side_caches.get(self._cache)
            if side_cache is None:
                side_cache = self._side_caches[self._cache] = KVCache(self.n_blocks)
        for name in self.active_adapters:
            out = self.side[name](taps, out, side_cache)
        return out

    def unload(self):
        for handle in self._handles:
            handle.remove()
        return None


def inject_ladder(model: nn.Module, config: LSTConfig, adapter_name: str) -> None:
    if getattr(model, "config", None) is None:
        raise ValueError(f"{type(model).__name__} has no .config: LST reads the head counts from it")
    blocks = [(p, m) for p, m in model.named_modules() if BLOCKS.match(p)]
    embed, final = _first_existing(model, EMBEDDING_OUTPUTS), _first_existing(model, FINAL_HIDDEN)
    if not blocks or embed is None or final is None:
        raise ValueError(f"{type(model).__name__}: LST needs transformer blocks (transformer.h.N, "
                         f"model.layers.N, bert.encoder.layer.N), an embedding output {EMBEDDING_OUTPUTS} "
                         f"and a final hidden state {FINAL_HIDDEN}")
    if config.init == "fisher" and not config.fisher_batches:
        raise ValueError("LSTConfig(init='fisher') needs fisher_batches: a few batches model(*batch) takes, "
                         "e.g. [(idx, targets), ...], whose squared gradients score the backbone's weights")
    bad = [i for i in config.drop_layers if not 0 <= i < len(blocks)]
    if bad or len(set(config.drop_layers)) >= len(blocks):
        raise ValueError(f"drop_layers {config.drop_layers} must name some (not all) of the {len(blocks)} "
                         "layers")
    kept = [(i, m) for i, (_, m) in enumerate(blocks) if i not in config.drop_layers]
    final_module = model.get_submodule(final)
    final_norm = final_module if isinstance(final_module, (nn.LayerNorm, nn.RMSNorm)) else None
    side = SideNetwork(model, config, kept, final_norm)
    holder = model._modules.get("ladder_side")
    if holder is None:
        holder = LadderSideLayer(model, embed, [p for p, _ in blocks], final)
        model.add_module("ladder_side", holder)
    if adapter_name in holder.adapters:
        raise ValueError(f"ladder_side already has an adapter named {adapter_name!r}")
    holder.adapters[adapter_name] = config
    holder.side[adapter_name] = side.to(next(iter(model.parameters())).device)
    for p in side.parameters():
        p.requires_grad_(False)

