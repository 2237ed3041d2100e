"""The structural axes of a PrunableGPT beyond heads and MLP channels (structure.py): head dims,
whole blocks and the residual width, each removed with every weight that depends on it.

Head dims. In a layer of H heads of D dims, query/key dim i of head h owns row h*D + i of q and of k
in attn.c_attn (weight and bias); value dim i of head h owns row h*D + i of v and column h*D + i of
attn.c_proj.weight. A head's score q.k is a sum over its query/key dims and its output a sum over its
value dims, so the two are kept separately (the same number d of each, so that one head dim serves
q, k and v): every head keeps its own d best query/key dims and d best value dims. The softmax scale
stays the source's 1/sqrt(head_size) (model.py says why), so removing dims is exactly zeroing them.

Blocks. A block's output is its input plus the attention and MLP outputs; removing it is exactly
zeroing its two output projections (weights and biases). Adapt-Pruner's layer importance
I_l = 1 - mean cos(x_l, block_l(x_l)) (adapt.layer_importance) ranks them: the least important go.

Residual width. Residual channel c owns column c of wte, wpe (and lm_head when untied), entry c of
every LayerNorm (ln_1, ln_2, ln_f: weight and bias), column c of attn.c_attn.weight and
mlp.c_fc.weight (what reads the stream), and row c of attn.c_proj and mlp.c_proj (weight and bias:
what writes it). This is not function preserving even for channels that carry nothing: LayerNorm's
mean and variance are over the width, so they change with it (Minitron's width pruning, by the same
groups, is followed by training for this reason).

Scores are first-order Taylor, sum |w dL/dw| over a group's weights, or the magnitude sum |w|.
"""
from __future__ import annotations

import numpy as np

import tinyml.nn as nn

from .model import PrunableGPT, source_scale
from .structure import check_indices, float64_array, sliced_linear, sliced_parameter

__all__ = ["head_dim_scores", "prune_head_dims", "keep_top_dims", "prune_blocks", "width_scores",
           "prune_width"]


def _score(p, kind: str, where: str) -> np.ndarray:
    if kind not in ("taylor", "magnitude"):
        raise ValueError(f"kind must be 'taylor' or 'magnitude', got {kind!r}")
    w = float64_array(p)
    if kind == "magnitude":
        return np.abs(w)
    if p.grad is None:
        raise ValueError(f"Taylor scores need gradients: {where} has none; run a backward on calibration "
                         "batches first")
    return np.abs(w * float64_array(p.grad))


def head_dim_scores(model: PrunableGPT, layer: int, kind: str = "taylor") -> tuple[np.ndarray, np.ndarray]:
    """(query/key dim scores (H, D), value dim scores (H, D)) of one layer."""
    attn = model.transformer.h[layer].attn
    H, D = attn.n_head, attn.head_dim
    where = f"layer {layer}'s attention"
    qkv = _score(attn.c_attn.weight, kind, where).sum(1)  # (3HD,)
    if attn.c_attn.bias is not None:
        qkv = qkv + _score(attn.c_attn.bias, kind, where)
    q, k, v = qkv.reshape(3, H, D)
    out = _score(attn.c_proj.weight, kind, where).sum(0).reshape(H, D)  # c_proj columns
    return q + k, v + out


def keep_top_dims(scores: np.ndarray, d: int) -> np.ndarray:
    """(H, d): per head the indices of its d highest-scoring dims (ties to the lower index), sorted."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :d]
    return np.sort(order, axis=1)


def _check_dims(layer: int, name: str, keep, H: int, D: int) -> np.ndarray:
    keep = np.asarray(keep)
    if (keep.ndim != 2 or keep.shape[0] != H or not 1 <= keep.shape[1] <= D or keep.min() < 0
            or keep.max() >= D or any(len(np.unique(row)) != len(row) for row in keep)):
        raise ValueError(f"prune_head_dims: layer {layer} keeps {name} {keep.tolist()}; expected one row per "
                         f"head ({H}) of the same number (1 to {D}) of distinct dims in 0..{D - 1}")
    return np.sort(keep, axis=1)


def prune_head_dims(model: PrunableGPT, layer: int, qk_dims, v_dims, states: dict | None = None) -> None:
    """Keep, in every head h of layer `layer`, query/key dims qk_dims[h] and value dims v_dims[h]
    (indices into its current dims; both (H, d) for one d), in place. `states`: optimizer state by
    parameter id, carried to the pruned tensors (structure.sliced_parameter)."""
    if model.config.qk_layernorm:
        raise ValueError("prune_head_dims: this model has qk-layernorm, whose LayerNorm statistics over the "
                         "head dim would change with it (and its gains are shared by every head's dims); "
                         "prune heads instead")
    attn = model.transformer.h[layer].attn
    H, D = attn.n_head, attn.head_dim
    qk = _check_dims(layer, "query/key dims", qk_dims, H, D)
    v = _check_dims(layer, "value dims", v_dims, H, D)
    if qk.shape != v.shape:
        raise ValueError(f"prune_head_dims: layer {layer} keeps {qk.shape[1]} query/key dims and "
                         f"{v.shape[1]} value dims a head; one head dim serves both, so they must be equal")
    heads = np.arange(H)[:, None] * D
    qk_rows, v_rows = (qk + heads).ravel(), (v + heads).ravel()  # within q (and k), within v
    rows = np.concatenate([qk_rows, H * D + qk_rows, 2 * H * D + v_rows])
    attn.c_attn = sliced_linear(attn.c_attn, rows=rows, states=states)
    attn.c_proj = sliced_linear(attn.c_proj, cols=v_rows, states=states)
    attn.head_dim = qk.shape[1]
    attn.attn_scale = source_scale(model.config, attn.head_dim)  # the source's: see model.py
    model.config.layer_head_dim[layer] = qk.shape[1]


def prune_blocks(model: PrunableGPT, keep, states: dict | None = None) -> None:
    """Keep only blocks `keep` (indices into the current blocks), in order, in place; the config's
    n_layer and per-layer sizes follow. `states` loses the removed blocks' entries."""
    cfg = model.config
    L = cfg.n_layer
    keep = [int(i) for i in check_indices("prune_blocks keeps blocks", keep, L)]
    blocks = list(model.transformer.h)
    if states is not None:
        for i in set(range(L)) - set(keep):
            for p in blocks[i].parameters():
                states.pop(id(p), None)
    model.transformer.h = nn.ModuleList([blocks[i] for i in keep])
    cfg.n_layer = len(keep)
    for name in ("layer_heads", "layer_inner", "layer_head_dim"):
        setattr(cfg, name, [getattr(cfg, name)[i] for i in keep])


def _width_params(model: PrunableGPT) -> list:
    """(module, parameter name, axis of the residual channels) for every weight that has them; axis 1
    of a matrix is its columns."""
    tr = model.transformer
    out = [(tr.wte, "weight", 1), (tr.wpe, "weight", 1)]
    norms = [tr.ln_f]
    for b in tr.h:
        norms += [b.ln_1, b.ln_2]
        out += [(b.attn.c_attn, "weight", 1), (b.attn.c_proj, "weight", 0), (b.attn.c_proj, "bias", 0),
                (b.mlp.c_fc, "weight", 1), (b.mlp.c_proj, "weight", 0), (b.mlp.c_proj, "bias", 0)]
    out += [(n, name, 0) for n in norms for name in ("weight", "bias")]
    if not model.config.tie_word_embeddings:
        out.append((model.lm_head, "weight", 1))
    return [(m, name, axis) for m, name, axis in out if getattr(m, name, None) is not None]


def width_scores(model: PrunableGPT, kind: str = "taylor") -> np.ndarray:
    """(n_embd,): each residual channel's score summed over every weight it owns."""
    total = np.zeros(model.config.n_embd)
    for m, name, axis in _width_params(model):
        s = _score(getattr(m, name), kind, f"{type(m).__name__}.{name}")
        total += s if s.ndim == 1 else s.sum(1 - axis)
    return total


def prune_width(model: PrunableGPT, channels, states: dict | None = None) -> None:
    """Keep residual channels `channels` (indices into 0..n_embd-1) in every weight that has them, in
    place; config.n_embd follows (n_inner is fixed to the MLP's full width first, so that layer_inner's
    bound stays what it was). `states` as in prune_head_dims."""
    cfg = model.config
    if cfg.mup:
        raise ValueError("prune_width: muP's output multiplier and attention scale depend on n_embd, so a "
                         "muP model's residual width cannot be pruned; prune heads, dims and channels")
    C = cfg.n_embd
    keep = check_indices("prune_width keeps residual channels", channels, C)
    tr = model.transformer
    for emb in (tr.wte, tr.wpe):
        emb.weight = sliced_parameter(emb.weight, cols=keep, states=states)
        emb.embedding_dim = len(keep)
    for norm in [tr.ln_f] + [n for b in tr.h for n in (b.ln_1, b.ln_2)]:
        for name in ("weight", "bias"):
            if getattr(norm, name, None) is not None:
                setattr(norm, name, sliced_parameter(getattr(norm, name), keep, states=states))
        norm.normalized_shape = (len(keep),)
    for b in tr.h:  # readers of the stream lose columns, writers rows (and bias entries)
        b.attn.c_attn = sliced_linear(b.attn.c_attn, cols=keep, states=states)
        b.attn.c_proj = sliced_linear(b.attn.c_proj, rows=keep, states=states)
        b.mlp.c_fc = sliced_linear(b.mlp.c_fc, cols=keep, states=states)
        b.mlp.c_proj = sliced_linear(b.mlp.c_proj, rows=keep, states=states)
    if not cfg.tie_word_embeddings:
        model.lm_head = sliced_linear(model.lm_head, cols=keep, states=states)
    cfg.n_inner = cfg.n_inner or 4 * C
    cfg.n_embd = len(keep)
