"""Structured pruning of a PrunableGPT (train/pruning/model.py): remove attention heads and MLP
channels with every weight that depends on them, and score them.

A head h of a layer with H heads of dim D owns rows h*D:(h+1)*D of each of q, k, v in c_attn (weight
and bias: rows h*D, H*D + h*D and 2*H*D + h*D onwards) and the same columns of attn.c_proj.weight.
An MLP channel j owns row j of mlp.c_fc (weight and bias) and column j of mlp.c_proj.weight. Biases
of the projections back to n_embd, norms and embeddings belong to no group and are kept.

Group importance is the first-order Taylor estimate of the loss change when the group is zeroed
(LLM-Pruner's element-wise score, as Adapt-Pruner uses within a layer):

    I(group) = sum over the group's weights w of |w * dL/dw|,

or, without gradients, the weight magnitude sum |w| (`magnitude`, the one-shot baseline's score).
"""
from __future__ import annotations

import numpy as np

import tinyml
import tinyml.nn as nn

from .model import PrunableGPT


def float64_array(t) -> np.ndarray:
    return t.detach().float().numpy().astype(np.float64)


def _head_rows(h: int, H: int, D: int) -> np.ndarray:
    """c_attn rows of head h: its q, k and v slices."""
    return np.concatenate([np.arange(part * H * D + h * D, part * H * D + (h + 1) * D) for part in range(3)])


def group_scores(model: PrunableGPT, layer: int, kind: str = "taylor") -> tuple[np.ndarray, np.ndarray]:
    """(head scores (H,), channel scores (I,)) of one layer. kind "taylor" needs the weights'
    .grad (from a backward on calibration batches); "magnitude" uses |w| alone."""
    if kind not in ("taylor", "magnitude"):
        raise ValueError(f"group_scores: kind must be 'taylor' or 'magnitude', got {kind!r}")
    block = model.transformer.h[layer]
    attn, mlp = block.attn, block.mlp
    H, D = attn.n_head, attn.head_dim

    def score(p) -> np.ndarray:
        w = float64_array(p)
        if kind == "magnitude":
            return np.abs(w)
        if p.grad is None:
            raise ValueError(f"Taylor scores need gradients: layer {layer}'s weights have none; run a "
                             "backward on calibration batches first")
        return np.abs(w * float64_array(p.grad))

    qkv_w, proj_w = score(attn.c_attn.weight), score(attn.c_proj.weight)  # (3HD, C), (C, HD)
    qkv_b = score(attn.c_attn.bias) if attn.c_attn.bias is not None else np.zeros(3 * H * D)
    heads = np.array([qkv_w[_head_rows(h, H, D)].sum() + qkv_b[_head_rows(h, H, D)].sum()
                      + proj_w[:, h * D:(h + 1) * D].sum() for h in range(H)])
    fc_w, out_w = score(mlp.c_fc.weight), score(mlp.c_proj.weight)  # (I, C), (C, I)
    channels = fc_w.sum(1) + out_w.sum(0)
    if mlp.c_fc.bias is not None:
        channels = channels + score(mlp.c_fc.bias)
    return heads, channels


def _slice(t, rows=None, cols=None):
    """t[rows][:, cols] as a new tensor of t's dtype and device (cols only for matrices)."""
    a = t.detach().numpy()
    a = a[rows] if rows is not None else a
    a = a[:, cols] if cols is not None else a
    return tinyml.tensor(np.ascontiguousarray(a), dtype=t.dtype).to(t.device)


_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")  # Adam's per-entry state, sliced with the weights


def sliced_parameter(old_p, rows=None, cols=None, states: dict | None = None) -> nn.Parameter:
    """A new Parameter holding old_p[rows][:, cols]. `states` ({id(param): (param, optimizer state)})
    has old_p's entry moved to the new parameter, with Adam's moments sliced the same way, so training
    continues from them."""
    new_p = nn.Parameter(_slice(old_p, rows, cols), requires_grad=old_p.requires_grad)
    entry = states.pop(id(old_p), None) if states is not None else None
    if entry:
        moved = {k: _slice(v, rows, cols) if k in _MOMENTS else v for k, v in entry[1].items()}
        states[id(new_p)] = (new_p, moved)
    return new_p


def sliced_linear(old: nn.Linear, rows=None, cols=None, states: dict | None = None) -> nn.Linear:
    """A new Linear holding old's weight[rows][:, cols] (and bias[rows]), on old's device, optimizer
    state moved as sliced_parameter moves it."""
    weight = sliced_parameter(old.weight, rows, cols, states)
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=old.bias is not None)
    new.weight = weight
    if old.bias is not None:
        new.bias = sliced_parameter(old.bias, rows, None, states)
    return new


def check_indices(what: str, keep, n: int) -> np.ndarray:
    """`keep` as a sorted index array, or a ValueError ("<what> [...]; expected 1 to n distinct indices
    in 0..n-1")."""
    keep = np.asarray(keep)
    if (keep.ndim != 1 or keep.size == 0 or not np.issubdtype(keep.dtype, np.integer) or keep.min() < 0
            or keep.max() >= n or len(np.unique(keep)) != keep.size):
        shown = keep.tolist() if keep.size <= 12 else f"{keep.ravel()[:12].tolist()}... ({keep.size})"
        raise ValueError(f"{what} {shown}; expected 1 to {n} distinct indices in 0..{n - 1}")
    return np.sort(keep)


def prune_layer(model: PrunableGPT, layer: int, heads=None, channels=None,
                states: dict | None = None) -> None:
    """Keep only `heads` (indices into the layer's current heads) and `channels` (indices into its
    MLP channels) of layer `layer`, in place; None keeps all. The config's layer_heads/layer_inner
    follow, so save_pruned records the new sizes. At least one head and one channel must stay.
    `states`: optimizer state by parameter id, carried to the pruned tensors (see sliced_linear)."""
    block = model.transformer.h[layer]
    attn, mlp = block.attn, block.mlp
    H, D, inner = attn.n_head, attn.head_dim, mlp.c_fc.out_features
    if heads is not None:
        heads = check_indices(f"prune_layer: layer {layer} keeps heads", heads, H)
    if channels is not None:
        channels = check_indices(f"prune_layer: layer {layer} keeps channels", channels, inner)
    if heads is not None:
        rows = np.concatenate([np.arange(part * H * D + h * D, part * H * D + (h + 1) * D)
                               for part in range(3) for h in heads])
        cols = np.concatenate([np.arange(h * D, (h + 1) * D) for h in heads])
        attn.c_attn = sliced_linear(attn.c_attn, rows=rows, states=states)
        attn.c_proj = sliced_linear(attn.c_proj, cols=cols, states=states)
        attn.n_head = len(heads)
        model.config.layer_heads[layer] = len(heads)
    if channels is not None:
        mlp.c_fc = sliced_linear(mlp.c_fc, rows=channels, states=states)
        mlp.c_proj = sliced_linear(mlp.c_proj, cols=channels, states=states)
        model.config.layer_inner[layer] = len(channels)


def layer_params(cfg, heads: int, inner: int, head_dim: int, n_embd: int | None = None) -> int:
    """Parameters of one block's heads and MLP channels: `heads` heads of `head_dim` dims (q, k, v rows
    with biases, c_proj columns) and an MLP `inner` wide (c_fc rows with biases, c_proj columns), at
    residual width `n_embd` (None: cfg.n_embd)."""
    C, D, b = n_embd or cfg.n_embd, head_dim, int(cfg.bias)
    return (C + b) * 3 * heads * D + heads * D * C + (C + b) * inner + inner * C


def prunable_size(cfg) -> tuple[int, int]:
    """(parameters the heads and MLP channels hold now, the fewest they can hold: one head and one
    channel a layer, at the layers' current head dims)."""
    sizes = zip(cfg.layer_heads, cfg.layer_inner, cfg.layer_head_dim)
    now = sum(layer_params(cfg, h, i, d) for h, i, d in sizes)
    return now, sum(layer_params(cfg, 1, 1, d) for d in cfg.layer_head_dim)


def keep_top(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Indices of the n_keep highest scores (ties to the lower index), sorted."""
    order = np.argsort(-scores, kind="stable")
    return np.sort(order[:max(1, n_keep)])
