"""The weights of one backbone block, read by module name, and their structural pruning into a side
block of width d / r (ladder.py), ranked by weight magnitude or by Fisher information.

    keep  residual channels c (chosen over all blocks by ladder._top_channels)
          per key/value group, the D / r head dims with the largest score in q (all its query
          heads) and k together; for v, the dims with the largest score in v and in o's columns
          the I / r MLP units with the largest score in fc (and gate) rows and proj columns
    then  every matrix is cut to those rows and columns, biases and norm weights to those entries.

A structure's score is the sum over its weights of |w| (magnitude, L1) or of F(w), the empirical
Fisher information (ladder_fisher.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

import tinyml.nn as nn

# (q, k, v or fused qkv, o, fc, gate, proj, norm1, norm2) module paths inside a block, by family
LAYOUTS = {
    "gpt": ("attn.c_attn", None, None, "attn.c_proj", "mlp.c_fc", None, "mlp.c_proj", "ln_1", "ln_2"),
    "llama": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.up_proj",
              "mlp.gate_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm"),
    "bert": ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "intermediate.dense", None, "output.dense", "attention.output.LayerNorm", "output.LayerNorm"),
}


@dataclass
class BlockWeights:
    d: int
    n_head: int
    n_kv: int
    head_dim: int
    q: np.ndarray
    q_b: np.ndarray | None
    k: np.ndarray
    k_b: np.ndarray | None
    v: np.ndarray
    v_b: np.ndarray | None
    o: np.ndarray
    o_b: np.ndarray | None
    fc: np.ndarray
    fc_b: np.ndarray | None
    gate: np.ndarray | None
    proj: np.ndarray
    proj_b: np.ndarray | None
    norm1: np.ndarray
    norm1_b: np.ndarray | None
    norm2: np.ndarray
    norm2_b: np.ndarray | None
    rms: bool
    exact_gelu: bool
    causal: bool

    def channel_importance(self) -> np.ndarray:
        """(d,) summed |entry| per residual channel over what reads it (q k v fc gate) and writes it
        (o proj): its L1 weight, or its Fisher information when the arrays are scores."""
        reads = [self.q, self.k, self.v, self.fc] + ([self.gate] if self.gate is not None else [])
        return sum(np.abs(w).sum(0) for w in reads) + np.abs(self.o).sum(1) + np.abs(self.proj).sum(1)


def _arr(module, name: str, scores: dict | None = None):
    t = getattr(module, name, None)
    if t is None:
        return None
    if scores is not None:  # the tensor's importance (Fisher information), None where not scored
        return scores.get(id(t))
    return t.detach().float().numpy().astype(np.float32)


def _layout(block: nn.Module) -> str:
    names = {p for p, _ in block.named_modules()}
    for family, paths in LAYOUTS.items():
        if all(p in names for p in paths if p is not None):
            return family
    raise ValueError(f"{type(block).__name__}: not a GPT, Llama or BERT block by its module names "
                     f"({sorted(n for n in names if n)[:12]}...)")


def _heads(cfg) -> tuple[int, int]:
    h = getattr(cfg, "n_head", None) or getattr(cfg, "num_attention_heads", None)
    if h is None:
        raise ValueError(f"{type(cfg).__name__} has neither n_head nor num_attention_heads")
    return h, getattr(cfg, "num_key_value_heads", None) or h


def block_weights(block: nn.Module, cfg, scores: dict | None = None) -> BlockWeights:
    """The block's weights; with `scores` ({id(tensor): array}), those arrays in their place (the
    Fisher information of each weight matrix; biases and norms are None), for ranking."""
    family = _layout(block)
    qp, kp, vp, op, fcp, gp, projp, n1, n2 = LAYOUTS[family]
    get = block.get_submodule
    H, Hkv = _heads(cfg)
    if family == "gpt":  # fused (3d, d): q, k, v stacked by rows
        qkv, qkv_b = _arr(get(qp), "weight", scores), _arr(get(qp), "bias", scores)
        d = qkv.shape[1]
        q, k, v = np.split(qkv, 3)
        qb, kb, vb = np.split(qkv_b, 3) if qkv_b is not None else (None, None, None)
    else:
        q, k, v = (_arr(get(p), "weight", scores) for p in (qp, kp, vp))
        qb, kb, vb = (_arr(get(p), "bias", scores) for p in (qp, kp, vp))
        d = q.shape[1]
    norm = get(n1)

    def arr(module, name):
        return _arr(module, name, scores)

    return BlockWeights(
        d=d, n_head=H, n_kv=Hkv, head_dim=q.shape[0] // H, q=q, q_b=qb, k=k, k_b=kb, v=v, v_b=vb,
        o=arr(get(op), "weight"), o_b=arr(get(op), "bias"), fc=arr(get(fcp), "weight"),
        fc_b=arr(get(fcp), "bias"), gate=arr(get(gp), "weight") if gp else None,
        proj=arr(get(projp), "weight"), proj_b=arr(get(projp), "bias"),
        norm1=arr(norm, "weight"), norm1_b=arr(norm, "bias"), norm2=arr(get(n2), "weight"),
        norm2_b=arr(get(n2), "bias"), rms=isinstance(norm, nn.RMSNorm), exact_gelu=family == "bert",
        causal=family != "bert")


def _top(score: np.ndarray, n: int) -> np.ndarray:
    return np.sort(np.argsort(-score, kind="stable")[:n])


def _random_like(rows: int, cols: int, rng) -> np.ndarray:
    bound = 1 / np.sqrt(cols)  # nn.Linear's default: kaiming_uniform_(a=sqrt(5))
    return rng.uniform(-bound, bound, size=(rows, cols)).astype(np.float32)


def prune_block(w: BlockWeights, channels: np.ndarray, r: int, magnitude: bool,
                score: BlockWeights | None = None) -> BlockWeights:
    """The side block's weights: w cut to `channels`, D / r head dims and I / r MLP units, ranked by
    |w| (magnitude) or by `score`'s arrays (Fisher information: block_weights(..., scores))."""
    H, Hkv, D = w.n_head, w.n_kv, w.head_dim
    Dh, inner = max(1, D // r), max(1, w.fc.shape[0] // r)
    group = H // Hkv
    c = channels
    if not magnitude:
        rng = np.random.default_rng(0)
        ds = len(c)
        ones = np.ones(ds, dtype=np.float32)
        zeros = np.zeros(ds, dtype=np.float32)

        def bias(n: int) -> np.ndarray:
            return np.zeros(n, dtype=np.float32)

        return replace(w, d=ds, head_dim=Dh, q=_random_like(H * Dh, ds, rng), q_b=bias(H * Dh),
                       k=_random_like(Hkv * Dh, ds, rng), k_b=bias(Hkv * Dh),
                       v=_random_like(Hkv * Dh, ds, rng), v_b=bias(Hkv * Dh),
                       o=_random_like(ds, H * Dh, rng), o_b=bias(ds),
                       fc=_random_like(inner, ds, rng), fc_b=bias(inner),
                       gate=_random_like(inner, ds, rng) if w.gate is not None else None,
                       proj=_random_like(ds, inner, rng), proj_b=bias(ds), norm1=ones, norm1_b=zeros,
                       norm2=ones, norm2_b=zeros)
    s = w if score is None else score  # what ranks; w is what is cut
    q_rows, k_rows, v_rows, o_cols = [], [], [], []
    for g in range(Hkv):
        heads = range(g * group, (g + 1) * group)
        qk = np.abs(s.k[g * D:(g + 1) * D][:, c]).sum(1)
        vo = np.abs(s.v[g * D:(g + 1) * D][:, c]).sum(1)
        for h in heads:
            qk = qk + np.abs(s.q[h * D:(h + 1) * D][:, c]).sum(1)
            vo = vo + np.abs(s.o[c][:, h * D:(h + 1) * D]).sum(0)
        dims_qk, dims_v = _top(qk, Dh), _top(vo, Dh)
        k_rows.append(g * D + dims_qk)
        v_rows.append(g * D + dims_v)
        for h in heads:
            q_rows.append(h * D + dims_qk)
            o_cols.append(h * D + dims_v)
    q_rows, k_rows, v_rows, o_cols = (np.concatenate(x) for x in (q_rows, k_rows, v_rows, o_cols))
    unit = np.abs(s.fc[:, c]).sum(1) + np.abs(s.proj[c]).sum(0)
    if s.gate is not None:
        unit = unit + np.abs(s.gate[:, c]).sum(1)
    units = _top(unit, inner)

    def cut(b, idx):
        return None if b is None else b[idx]

    return replace(w, d=len(c), head_dim=Dh, q=w.q[q_rows][:, c], q_b=cut(w.q_b, q_rows),
                   k=w.k[k_rows][:, c], k_b=cut(w.k_b, k_rows), v=w.v[v_rows][:, c], v_b=cut(w.v_b, v_rows),
                   o=w.o[c][:, o_cols], o_b=cut(w.o_b, c), fc=w.fc[units][:, c], fc_b=cut(w.fc_b, units),
                   gate=w.gate[units][:, c] if w.gate is not None else None, proj=w.proj[c][:, units],
                   proj_b=cut(w.proj_b, c), norm1=w.norm1[c], norm1_b=cut(w.norm1_b, c), norm2=w.norm2[c],
                   norm2_b=cut(w.norm2_b, c))
