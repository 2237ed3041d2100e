"""Mamba (Gu and Dao 2023): the selective state space block and a language model of them.

    Mamba block, x (B, L, d_model), d_inner = expand * d_model:
      x, z  = in_proj(x).chunk(2)                                (B, d_inner, L) each
      x     = silu(causal depthwise conv1d(x))                   width d_conv
      dt, B, C = x_proj(x).split(dt_rank, d_state, d_state)      input-dependent: the "selection"
      dt    = softplus(dt_proj(dt))                              (B, d_inner, L)
      y     = selective_scan(x, dt, A = -exp(A_log), B, C, D) * silu(z)
      out   = out_proj(y)
    MambaLM: embedding, n_layer x (x + Mamba(RMSNorm(x))), RMSNorm, head tied to the embedding.

Module and parameter names are transformers' MambaForCausalLM (backbone.layers.0.mixer.A_log, ...),
so its checkpoints map one to one (the adapter at the end of this file: config.json <-> MambaConfig;
a tied lm_head.weight is dropped on load and not written on save; conv1d.weight is (d_inner, 1, k)
in both). Init as mamba_ssm: A_log = log(1..d_state) per channel,
D = 1, dt_proj's bias the inverse softplus of dt ~ log-uniform [dt_min, dt_max] (floored), its
weight U(+-dt_rank^-1/2 dt_scale), out_proj scaled by 1/sqrt(n_layer); A_log and D carry
optim_hints for no weight decay (tinyml/optim/param_groups.py).

Generation (MambaCache): per layer a conv state (B, d_inner, d_conv - 1), the last inputs of
the convolution, and an SSM state (B, d_inner, d_state): constant size, whatever the length.
A prompt runs as one scan that also returns the last state; each next token is one recurrence
step: the projections, causal_conv1d_update and one fused selective_state_update per layer.
Padding (attention_mask, 1 = token, 0 = pad): the inputs of the convolution and of the
scan are zeroed at pads *and dt is zeroed there*, so exp(dt A) = 1 and dt B x = 0 keep the state
unchanged across pads (transformers zeroes the inputs only: right pads then decay the state by
exp(dt A) per pad); the caches hold the states after each row's last token, whichever side the
padding is on.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from ..hf import HFAdapter, HFMixin, config_path, config_value, register_architecture
from ..transformer.generate import GenerationMixin
from ..transformer.layers import LMOutput, lm_loss

__all__ = ["Mamba", "MambaCache", "MambaConfig", "MambaLM", "causal_conv1d_silu"]


def causal_conv1d_silu(x, weight, bias):
    """silu(causal depthwise conv1d): x (B, D, L), weight (D, K), bias (D,) or None; the fused
    op, equal to F.conv1d over x left-padded by K - 1 with groups = D, then SiLU."""
    return tinyml.ops.causal_conv1d(x, weight, bias, activation="silu")


@dataclass
class MambaConfig:
    vocab_size: int = 65
    d_model: int = 128
    n_layer: int = 4
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None  # None: ceil(d_model / 16)
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init: str = "random"  # or "constant"
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False
    norm_eps: float = 1e-5
    tie_word_embeddings: bool = True

    def __post_init__(self):
        if self.dt_rank is None:
            self.dt_rank = math.ceil(self.d_model / 16)
        for name in ("vocab_size", "d_model", "n_layer", "d_state", "d_conv", "expand", "dt_rank"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"MambaConfig: {name} must be a positive int, got {v!r}")
        if self.dt_init not in ("random", "constant"):
            raise ValueError(f"MambaConfig: dt_init must be 'random' or 'constant', got {self.dt_init!r}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    def to_dict(self) -> dict:
        return asdict(self)


class MambaCache:
    """Per layer: conv_states[i] (B, d_inner, d_conv - 1) and ssm_states[i] (B, d_inner, d_state);
    `seq_len` counts the tokens seen."""

    def __init__(self, n_layer: int):
        self.conv_states: list = [None] * n_layer
        self.ssm_states: list = [None] * n_layer
        self.seq_len = 0


class Mamba(nn.Module):
    """The Mamba block: (B, L, d_model) -> (B, L, d_model)."""

    optim_hints = {"A_log": {"weight_decay": 0.0}, "D": {"weight_decay": 0.0}}

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        di, n, r = cfg.d_inner, cfg.d_state, cfg.dt_rank
        self.d_model, self.d_inner, self.d_state = cfg.d_model, di, n
        self.dt_rank, self.d_conv = r, cfg.d_conv
        self.in_proj = nn.Linear(cfg.d_model, 2 * di, bias=cfg.bias)
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, padding=cfg.d_conv - 1, bias=cfg.conv_bias)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=True)
        A = np.tile(np.arange(1, n + 1, dtype=np.float64), (di, 1))  # (di, n): A = -(1..n), S4D-Real
        self.A_log = nn.Parameter(tinyml.tensor(np.log(A), dtype=tinyml.float32))
        self.D = nn.Parameter(tinyml.ones(di))
        self.out_proj = nn.Linear(di, cfg.d_model, bias=cfg.bias)
        std = r ** -0.5 * cfg.dt_scale
        with tinyml.no_grad():
            if cfg.dt_init == "constant":
                nn.init.constant_(self.dt_proj.weight, std)
            else:
                nn.init.uniform_(self.dt_proj.weight, -std, std)
            u = tinyml.rand(di, dtype=tinyml.float64).numpy()
            dt = np.exp(u * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
            dt = np.maximum(dt, cfg.dt_init_floor)
            inv_softplus = dt + np.log(-np.expm1(-dt))
            self.dt_proj.bias.copy_(tinyml.tensor(inv_softplus, dtype=tinyml.float32))

    def _check(self, h, mask):
        if not isinstance(h, tinyml.Tensor) or h.ndim != 3 or h.shape[-1] != self.d_model:
            got = tuple(h.shape) if isinstance(h, tinyml.Tensor) else type(h).__name__
            raise ValueError(f"Mamba: expected hidden states (B, L, d_model={self.d_model}), got {got}")
        if mask is not None and tuple(mask.shape) != tuple(h.shape[:2]):
            raise ValueError(f"Mamba: attention_mask has shape {tuple(mask.shape)}, expected (B, L) = "
                             f"{tuple(h.shape[:2])} for hidden states of shape {tuple(h.shape)}")

    def forward(self, h, attention_mask=None, cache: MambaCache | None = None, layer: int = 0):
        self._check(h, attention_mask)
        if cache is not None and cache.ssm_states[layer] is not None:
            if attention_mask is not None and not bool((attention_mask != 0).all().item()):
                shape = tuple(attention_mask.shape)
                raise ValueError(f"Mamba: padding (attention_mask zeros, shape {shape}) is for the prompt, "
                                 "on an empty cache; the tokens after it are all real")
            return self._steps(h, cache, layer)
        Bt, L, _ = h.shape
        m = None if attention_mask is None else attention_mask.to(h.dtype).unsqueeze(1)  # (B, 1, L)
        x, z = self.in_proj(h).transpose(1, 2).chunk(2, dim=1)  # (B, di, L) each
        if m is not None:
            x = x * m
        weight = self.conv1d.weight.squeeze(1)  # (di, K)
        if cache is not None:
            cache.conv_states[layer] = self._last_inputs(x.detach(), attention_mask)
        x = causal_conv1d_silu(x, weight, self.conv1d.bias)  # (B, di, L)
        if m is not None:
            x = x * m
        dt, Bm, Cm = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj.weight @ dt.transpose(1, 2)  # (B, di, L), the bias goes in with the softplus
        A = -self.A_log.exp()  # (di, n)
        Bm, Cm = Bm.transpose(1, 2), Cm.transpose(1, 2)  # (B, n, L)
        if m is None:
            y, last = tinyml.ops.selective_scan(x, dt, A, Bm, Cm, self.D, z, self.dt_proj.bias, True,
                                                return_last_state=True)
        else:  # dt = 0 at pads: the state passes through them unchanged
            dt = F.softplus(dt + self.dt_proj.bias.unsqueeze(-1)) * m
            y, last = tinyml.ops.selective_scan(x, dt, A, Bm, Cm, self.D, z, None, False,
                                                return_last_state=True)
        if cache is not None:
            cache.ssm_states[layer] = last.detach()
        return self.out_proj(y.transpose(1, 2))  # (B, L, d_model)

    def _last_inputs(self, x, attention_mask):
        """The d_conv - 1 convolution inputs up to each row's last token (zeros before the start)."""
        S = self.d_conv - 1
        xp = F.pad(x, (S, 0))  # (B, di, S + L)
        L = x.shape[-1]
        if attention_mask is None:
            return xp[..., L:].contiguous()
        mask = attention_mask.detach().cpu().numpy() != 0
        ends = [int(np.flatnonzero(row)[-1]) + 1 if row.any() else 0 for row in mask]  # in x's coordinates
        return tinyml.stack([xp[b, :, e:e + S] for b, e in enumerate(ends)]).contiguous()

    def _steps(self, h, cache: MambaCache, layer: int):
        """The recurrence, one token at a time, from the cached states (updated in place): per token
        the in/x/dt/out projections, the conv step (causal_conv1d_update) and one fused scan step
        (selective_state_update: softplus, exp(dt A), the state update, C . state, D skip, gate)."""
        weight = self.conv1d.weight.squeeze(1)  # (di, K)
        A = -self.A_log.exp()  # (di, n)
        state, conv_state = cache.ssm_states[layer], cache.conv_states[layer]
        outs = []
        for t in range(h.shape[1]):  # 2-d operands throughout: a (B, 1, d) linear costs two reshapes more
            xz = F.linear(h[:, t], self.in_proj.weight, self.in_proj.bias)  # (B, 2 di)
            x, z = xz.chunk(2, dim=-1)  # (B, di) each
            x = tinyml.ops.causal_conv1d_update(x, conv_state, weight, self.conv1d.bias, activation="silu")
            x_db = F.linear(x, self.x_proj.weight)  # (B, dt_rank + 2 n)
            dt, Bm, Cm = x_db.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
            dt = F.linear(dt, self.dt_proj.weight)  # (B, di); the bias goes in with the softplus
            y = tinyml.ops.selective_state_update(state, x, dt, A, Bm, Cm, self.D, z, self.dt_proj.bias,
                                                  dt_softplus=True)  # (B, di)
            outs.append(F.linear(y, self.out_proj.weight, self.out_proj.bias))  # (B, d_model)
        return outs[0].unsqueeze(1) if len(outs) == 1 else tinyml.stack(outs, 1)  # (B, L, d_model)


class MambaBlock(nn.Module):
    """Pre-norm residual: x + mixer(norm(x))."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mixer = Mamba(cfg)

    def forward(self, x, attention_mask=None, cache=None, layer: int = 0):
        return x + self.mixer(self.norm(x), attention_mask, cache, layer)


class MambaBackbone(nn.Module):
    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList([MambaBlock(cfg) for _ in range(cfg.n_layer)])
        self.norm_f = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)


class MambaLM(nn.Module, HFMixin, GenerationMixin):
    """MambaLM(MambaConfig(...)): logits, loss = model(idx, targets, attention_mask=None, cache=None)."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.config = config
        self.backbone = MambaBackbone(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        with tinyml.no_grad():
            nn.init.normal_(self.backbone.embeddings.weight, std=0.02)
            for block in self.backbone.layers:  # mamba_ssm's rescale_prenorm_residual
                block.mixer.out_proj.weight.mul_(1 / math.sqrt(config.n_layer))

    def new_cache(self) -> MambaCache:
        return MambaCache(self.config.n_layer)

    def forward(self, idx, targets=None, cache: MambaCache | None = None, attention_mask=None):
        if not isinstance(idx, tinyml.Tensor) or idx.ndim != 2:
            got = tuple(idx.shape) if isinstance(idx, tinyml.Tensor) else type(idx).__name__
            raise ValueError(f"MambaLM: idx must be a (B, L) tensor of token ids, got {got}")
        x = self.backbone.embeddings(idx)  # (B, L, d_model)
        for i, block in enumerate(self.backbone.layers):
            x = block(x, attention_mask, cache, i)
        x = self.backbone.norm_f(x)
        if cache is not None:
            cache.seq_len += idx.shape[1]
        w = self.backbone.embeddings.weight if self.config.tie_word_embeddings else self.lm_head.weight
        logits = F.linear(x, w)  # (B, L, V)
        return LMOutput(logits, None if targets is None else lm_loss(logits, targets))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---- Hugging Face: MambaForCausalLM ---------------------------------------------------------------
def _config_from_hf(c: dict) -> dict:
    act = config_value(c, "hidden_act", "str", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(f"{config_path(c)}: hidden_act is {act!r}; tinyml's Mamba uses silu (the fused "
                         "conv)")
    d_model = config_value(c, "hidden_size", "int>0")
    rank = c.get("time_step_rank", "auto")
    rank = math.ceil(d_model / 16) if rank in ("auto", None) else config_value(c, "time_step_rank", "int>0")
    return dict(vocab_size=config_value(c, "vocab_size", "int>0"), d_model=d_model,
                n_layer=config_value(c, "num_hidden_layers", "int>0"),
                d_state=config_value(c, "state_size", "int>0", 16),
                d_conv=config_value(c, "conv_kernel", "int>0", 4),
                expand=config_value(c, "expand", "int>0", 2),
                dt_rank=rank, dt_min=config_value(c, "time_step_min", "float", 1e-3),
                dt_max=config_value(c, "time_step_max", "float", 1e-1),
                dt_init=config_value(c, "time_step_init_scheme", "str", "random"),
                dt_scale=config_value(c, "time_step_scale", "float", 1.0),
                dt_init_floor=config_value(c, "time_step_floor", "float", 1e-4),
                conv_bias=config_value(c, "use_conv_bias", "bool", True),
                bias=config_value(c, "use_bias", "bool", False),
                norm_eps=config_value(c, "layer_norm_epsilon", "float", 1e-5),
                tie_word_embeddings=config_value(c, "tie_word_embeddings", "bool", True))


def _config_to_hf(cfg: MambaConfig) -> dict:
    return dict(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layer,
                state_size=cfg.d_state, conv_kernel=cfg.d_conv, expand=cfg.expand,
                intermediate_size=cfg.d_inner,
                time_step_rank=cfg.dt_rank, time_step_min=cfg.dt_min, time_step_max=cfg.dt_max,
                time_step_init_scheme=cfg.dt_init, time_step_scale=cfg.dt_scale,
                time_step_floor=cfg.dt_init_floor,
                use_conv_bias=cfg.conv_bias, use_bias=cfg.bias, layer_norm_epsilon=cfg.norm_eps,
                hidden_act="silu", residual_in_fp32=True, tie_word_embeddings=cfg.tie_word_embeddings)


def _weights_from_hf(cfg: MambaConfig, weights: dict) -> dict:
    out = {}
    for name, w in weights.items():
        name = name.replace("backbone.embedding.", "backbone.embeddings.")  # older checkpoints
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        out[name] = w
    return out


def _weights_to_hf(cfg: MambaConfig, state: dict) -> dict:
    return dict(state)


register_architecture(HFAdapter("MambaForCausalLM", "mamba", MambaLM, MambaConfig, _config_from_hf,
                                _config_to_hf, _weights_from_hf, _weights_to_hf))
