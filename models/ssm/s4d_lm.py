"""S4DLM: a character/token language model of S4D layers, the time-invariant baseline beside MambaLM.

    x = embedding(idx)                                           (B, L, d_model)
    n_layer x:  x = x + S4D(LayerNorm(x))      (the convolution mixes time, GLU output)
                x = x + MLP(LayerNorm(x))      (GELU, 4 d_model wide: mixes channels)
    logits = LayerNorm(x) @ embedding^T                           tied head

Training runs every S4D layer as an FFT convolution; generation with a cache (`new_cache`) runs
the S4D recurrence (S4D.step) one token at a time, a state of (B, d_model, d_state/2, 2) per layer,
so `tinyml.models.generate` works with it as with the GPT and MambaLM.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F

from ..transformer.layers import LMOutput, lm_loss
from .s4d import S4D

__all__ = ["S4DLM", "S4DLMConfig"]


@dataclass
class S4DLMConfig:
    vocab_size: int = 65
    d_model: int = 128
    n_layer: int = 4
    d_state: int = 64
    init: str = "legs"
    discretization: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    ssm_lr: float = 1e-3  # cap on the learning rate of A and dt (optim_hints)
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class S4DCache:
    """S4D states per layer, (B, d_model, d_state/2, 2) each; `seq_len` counts the tokens seen."""

    def __init__(self, n_layer: int):
        self.states: list = [None] * n_layer
        self.seq_len = 0


class S4DLMBlock(nn.Module):
    def __init__(self, cfg: S4DLMConfig, seed: int | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.ssm = S4D(cfg.d_model, cfg.d_state, cfg.init, cfg.dt_min, cfg.dt_max, cfg.discretization,
                       cfg.dropout, transposed=False, lr=cfg.ssm_lr, seed=seed)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def mlp(self, x):
        return self.drop(self.proj(F.gelu(self.fc(self.norm2(x)))))

    def forward(self, x):  # (B, L, d_model)
        x = x + self.ssm(self.norm1(x))
        return x + self.mlp(x)

    def step(self, x, state):  # x (B, d_model)
        y, state = self.ssm.step(self.norm1(x), state)
        x = x + y
        return x + self.mlp(x), state


class S4DLM(nn.Module):
    """S4DLM(S4DLMConfig(...)): logits, loss = model(idx, targets=None, cache=None)."""

    def __init__(self, config: S4DLMConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.d_model)
        seed = int(tinyml.randint(0, 2 ** 31, (1,)).item())  # the layers' inits follow tinyml.manual_seed
        self.layers = nn.ModuleList([S4DLMBlock(config, seed + i) for i in range(config.n_layer)])
        self.norm_f = nn.LayerNorm(config.d_model)
        with tinyml.no_grad():
            nn.init.normal_(self.embeddings.weight, std=0.02)

    def new_cache(self) -> S4DCache:
        return S4DCache(self.config.n_layer)

    def forward(self, idx, targets=None, cache: S4DCache | None = None):
        if not isinstance(idx, tinyml.Tensor) or idx.ndim != 2:
            got = tuple(idx.shape) if isinstance(idx, tinyml.Tensor) else type(idx).__name__
            raise ValueError(f"S4DLM: idx must be a (B, L) tensor of token ids, got {got}")
        x = self.embeddings(idx)  # (B, L, d_model)
        if cache is None:
            for block in self.layers:
                x = block(x)
        else:
            if cache.states[0] is None:
                cache.states = [blk.ssm.default_state(idx.shape[0]) for blk in self.layers]
            outs = []
            for t in range(idx.shape[1]):
                h = x[:, t]  # (B, d_model)
                for i, block in enumerate(self.layers):
                    h, cache.states[i] = block.step(h, cache.states[i])
                outs.append(h)
            x = tinyml.stack(outs, 1)
            cache.seq_len += idx.shape[1]
        logits = F.linear(self.norm_f(x), self.embeddings.weight)  # (B, L, V)
        return LMOutput(logits, None if targets is None else lm_loss(logits, targets))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
