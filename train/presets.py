"""Model and training presets for `tinyml train --config NAME` (nanoGPT's shakespeare_char runs).

baby:  4 layers, 4 heads, 128 wide, context 64, batch 12, 2000 steps (nanoGPT's CPU run)
small: 6 layers, 6 heads, 384 wide, context 256, batch 64, dropout 0.2, 5000 steps (its GPU run)

`sized_for` names the device a preset is meant for: on a cpu, small takes seconds per step and
each of its evaluations (200 batches of 64x256) minutes, so the command line says so when it runs there.

`tinyml train --model mamba|s4d` trains a state space model instead of the GPT, on the same
preset's data, context, batch and schedule; SSM_SIZES gives its size at about the GPT's parameter
count (baby: GPT 0.81M, MambaLM 6 x 128 wide 0.71M, S4DLM 4 x 128 wide 0.77M).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .trainer import TrainConfig


@dataclass(frozen=True)
class Preset:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    dropout: float
    train: TrainConfig = field(default_factory=TrainConfig)
    sized_for: str = "cpu"

    def activation_bytes(self, batch_size: int, vocab_size: int = 0) -> int:
        """A lower bound on the float32 activations one training step keeps for backward:
        per token and layer about 10 C (q, k, v, attention output, norms, the 4C MLP) plus the
        two (n_head, T) attention maps, and two vocab-sized rows for the logits and their
        softmax. Measured with tracemalloc it is 0.77x (baby) to 0.98x (small) the true peak."""
        per_token = self.n_layer * (10 * self.n_embd + 2 * self.n_head * self.block_size) + 2 * vocab_size
        return 4 * batch_size * self.block_size * per_token


PRESETS = {
    "baby": Preset(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0,
                   train=TrainConfig(max_steps=2000, lr=1e-3, min_lr=1e-4, warmup_steps=100, weight_decay=0.1,
                                     betas=(0.9, 0.99), grad_clip=1.0, eval_interval=250, eval_iters=20,
                                     log_interval=10)),
    "small": Preset(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2,
                    train=TrainConfig(max_steps=5000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                                      weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_interval=250,
                                      eval_iters=200, log_interval=10, mixed_precision=True),
                    sized_for="cuda"),
}


MODELS = ("gpt", "mamba", "s4d")

# (model, preset) -> the model's own config fields (vocab_size comes from the tokenizer)
SSM_SIZES = {
    ("mamba", "baby"): dict(d_model=128, n_layer=6, d_state=16, d_conv=4, expand=2),
    ("mamba", "small"): dict(d_model=384, n_layer=12, d_state=16, d_conv=4, expand=2),
    ("s4d", "baby"): dict(d_model=128, n_layer=4, d_state=64),
    ("s4d", "small"): dict(d_model=384, n_layer=6, d_state=64, dropout=0.2),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
