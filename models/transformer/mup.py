"""Maximal update parametrisation (muP; Yang et al. 2021, "Tensor Programs V: Tuning Large Neural
Networks via Zero-Shot Hyperparameter Transfer") for the GPT and Llama models.

    model = GPT(GPTConfig(n_embd=512, mup=True, mup_base_width=128))   # width_mult m = 512 / 128 = 4
    set_mup_lr_hints(model)              # before Trainer(...) builds its AdamW: hidden matrices at lr / 4

With m = width / base_width, muP for Adam (the paper's Table 3, with the output multiplier of its
"MuReadout") differs from the standard parametrisation (SP) in four places; at m = 1 it is SP:

    parameter / op                        init std            Adam learning rate
    hidden matrices (attention, MLP)      std / sqrt(m)       lr / m
    embeddings, biases, norm gains        std                 lr
    output head (tied or not)             std                 lr, logits = h W^T / m
    attention scores                      q.k sqrt(d_base) / d  (1/d in the head dim d = d_base m)

so that every activation coordinate, and its change after each Adam step, keeps its size as the
width grows: the best learning rate of a narrow model transfers to a wide one. The models apply
the init, the output multiplier and the attention scale (their `mup` config fields); the learning
rates go through the Trainer's parameter groups: `set_mup_lr_hints` gives each hidden Linear an
`optim_hints` entry (tinyml/optim/param_groups.py) with the multiplier lr_scale = base/width, which
holds in both directions (a model narrower than its base trains its hidden matrices above lr) and
which the schedule keeps as it moves the rate.

`coord_check` measures what muP promises: the RMS of each layer's output, per width, after each of
a few Adam steps; examples/mup/coord_check.py plots it (flat in width with muP, growing without).
"""
from __future__ import annotations

import math

import numpy as np

import tinyml
import tinyml.nn as nn

__all__ = ["width_mult", "check_mup_config", "hidden_linears", "mup_init_", "set_mup_lr_hints", "coord_check"]

_READOUT = "lm_head"  # the one Linear whose output dim (the vocabulary) does not grow with width


def check_mup_config(mup: bool, base_width: int | None, width: int) -> float:
    """The width multiplier width / base_width (1.0 when muP is off), after checking the fields:
    base_width must be a positive int when given; None means the model's own width."""
    if base_width is None:
        return 1.0
    if isinstance(base_width, bool) or not isinstance(base_width, int) or base_width <= 0:
        raise ValueError(f"mup_base_width must be a positive int, got {base_width!r}")
    if not mup:
        raise ValueError(f"mup_base_width={base_width} is set but mup is False; set mup=True or drop it")
    return width / base_width


def width_mult(model) -> float:
    """m = width / base width of a muP model (1.0 for a standard one)."""
    return float(getattr(model.config, "mup_width_mult", 1.0))


def attention_scale(head_dim: int, mult: float) -> float:
    """muP's softmax scale sqrt(d_base) / d with d_base = d / m: 1/sqrt(d) at m = 1, 1/d-like in width."""
    return math.sqrt(head_dim / mult) / head_dim


def hidden_linears(model) -> list[tuple[str, nn.Linear]]:
    """(name, module) of every Linear whose fan-in and fan-out both grow with the width: all of
    them but the output head (embeddings are not Linears)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and name.split(".")[-1] != _READOUT]


def mup_init_(model) -> None:
    """Scale the hidden matrices' initial weights by 1 / sqrt(m): their variance goes as 1 / fan_in
    relative to the base model's (the residual projections keep GPT-2's 1/sqrt(2 n_layer) on top)."""
    s = 1.0 / math.sqrt(width_mult(model))
    if s == 1.0:
        return
    with tinyml.no_grad():
        for _, m in hidden_linears(model):
            m.weight.copy_(m.weight * s)


def set_mup_lr_hints(model, lr: float | None = None) -> None:
    """Give every hidden Linear's weight the learning-rate multiplier 1/m through its `optim_hints`
    ("lr_scale", tinyml/optim/param_groups.py), so the Trainer's AdamW puts them in a group of their
    own at lr / m, which the schedule scales with the rest: below lr for a model wider than its base,
    above it for a narrower one. `lr` (optional, the peak rate) is only checked: the multiplier holds
    for any. A no-op for a model without muP or at m = 1."""
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"set_mup_lr_hints: lr must be a finite number > 0, got {lr!r}")
    mult = width_mult(model)
    if mult == 1.0:
        return
    for _, m in hidden_linears(model):
        hints = dict(getattr(m, "optim_hints", {}))
        hints["weight"] = {**hints.get("weight", {}), "lr_scale": 1.0 / mult}  # a cap set by hand stays
        m.optim_hints = hints  # an instance attribute: other Linears of the process are untouched


def _rms(t) -> float:
    a = t.detach().float().numpy().astype(np.float64)
    return float(np.sqrt(np.mean(a * a)))


def coord_check(make_model, widths, batches, *, lr: float = 1e-2, steps: int = 4,
                betas=(0.9, 0.99)) -> dict:
    """The coordinate check of Tensor Programs V: for each width, build `make_model(width)` (same
    seed each time), take `steps` AdamW steps (no schedule, no weight decay) at `lr` on `batches`
    (a list of (idx, targets), cycled), and record the RMS of each layer's output on the batch
    *before* each step: the embedding sum, every block, and the logits.

    Returns {"widths": [...], "layers": [names], "rms": array (steps, layers, widths)}. With muP each
    curve rms[t, layer, :] stays flat in width; in SP it grows once training has moved the weights."""
    if not widths or steps < 1 or not batches:
        raise ValueError(f"coord_check needs widths, steps >= 1 and batches; got widths={list(widths)}, "
                         f"steps={steps}, {len(batches)} batches")
    from tinyml.optim.param_groups import param_groups

    layers, table = None, []
    for width in widths:
        model = make_model(width)
        model.train()
        set_mup_lr_hints(model, lr)
        opt = tinyml.optim.AdamW(param_groups(model, lr, 0.0), lr=lr, betas=tuple(betas))
        recorded: dict[str, float] = {}
        watched = _watched_modules(model)
        handles = [m.register_forward_hook(
            lambda mod, args, out, name=name: recorded.__setitem__(name, _rms(out[0] if isinstance(out, tuple)
                                                                              else out)))
            for name, m in watched]
        per_step = []
        for t in range(steps):
            idx, targets = batches[t % len(batches)]
            logits, loss = model(idx, targets)
            recorded["logits"] = _rms(logits)
            per_step.append([recorded[name] for name, _ in watched] + [recorded["logits"]])
            opt.zero_grad()
            loss.backward()
            opt.step()
        for h in handles:
            h.remove()
        layers = [name for name, _ in watched] + ["logits"]
        table.append(per_step)
    return {"widths": list(widths), "layers": layers, "rms": np.array(table).transpose(1, 2, 0)}


def _watched_modules(model) -> list[tuple[str, nn.Module]]:
    """The token embedding and every block of a GPT or Llama, by their module names."""
    if hasattr(model, "transformer"):
        body, emb, blocks = model.transformer, "wte", "h"
    else:
        body, emb, blocks = model.model, "embed_tokens", "layers"
    return [(emb, getattr(body, emb))] + [(f"{blocks}.{i}", b) for i, b in enumerate(getattr(body, blocks))]
