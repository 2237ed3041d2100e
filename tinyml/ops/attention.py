"""scaled_dot_product_attention with PyTorch's semantics, on a fused kernel.

    out = softmax(q k^T scale + mask) v        scale = 1 / sqrt(E) unless given

The fused path (kernels attention_forward / attention_backward) saves q, k, v, out and the
per-query log-sum-exp only, O(T) beyond the inputs, and backward recomputes the probabilities
block by block: no T x T matrix is stored between forward and backward. Dropout (dropout_p > 0)
and a mask that itself requires grad take the composite path (matmul -> softmax -> dropout ->
matmul), which does store the probabilities. Masks: bool True = attend (turned into 0 / -inf),
float masks are added to the scores. is_causal: query i sees keys j <= i (top-left alignment,
also when Tq != Tk). enable_gqa: key/value heads are repeated to the query's head count
(repeat_interleave over dim -3). A query row whose keys are all masked gives zeros, not NaN, as
PyTorch; NaN in q, k or the mask (or a +inf score) gives NaN in the rows it reaches, and an inf
or NaN in v reaches every row's output (0 * NaN in the masked terms of the full product p v), as
PyTorch's default cpu kernel; the causal fused kernels skip the masked pairs and put those terms
back by rule (csrc/attention_tiles.h). Empty shapes are allowed: E = 0 (every score 0: the mean of
v), Tq = 0, Tk = 0 (zeros, as a fully masked row).

scaled_dot_product_attention_packed(qkv, n_head) is the same attention for a fused q/k/v
projection (a GPT block's c_attn): q, k, v are read straight from qkv (B, T, 3 H D), laid out
(B, T, 3, H, D), and the output is (B, T, H D), the layout the output projection reads; the
head transposes and their copies never enter the graph (kernels attention_packed_forward /
attention_packed_backward).
"""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..amp import cast_inputs
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor
from ._broadcast import broadcast_shapes
from .creation import arange
from .dropout import dropout
from .matmul import matmul
from .movement_copy import stack
from .pointwise import where
from .softmax import softmax

__all__ = ["scaled_dot_product_attention", "scaled_dot_product_attention_packed"]

class Attention(Function):
    """The fused path. Under create_graph=True backward rebuilds the probabilities p with tensor
    ops (storing them) and returns dq = ds k scale, dk = ds^T q scale, dv = p^T g, where
    ds = p (dp - sum_j dp p) and dp = g v^T: differentiable again (double backward)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, is_causal, scale):
        out, lse = run("attention_forward", q, k, v, mask, is_causal, scale)
        ctx.save_for_backward(q, k, v, out, lse, mask)
        ctx.is_causal, ctx.scale = is_causal, scale
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, out, lse, mask = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: the same derivative from differentiable tensor ops
            p = _probabilities(q, k, mask, ctx.is_causal, ctx.scale)
            dp = matmul(g, v.transpose(-2, -1))
            ds = p * (dp - (dp * p).sum(-1, keepdim=True)) * ctx.scale
            return (matmul(ds, k), matmul(ds.transpose(-2, -1), q), matmul(p.transpose(-2, -1), g),
                    None, None, None)
        dq, dk, dv = run("attention_backward", q, k, v, out, lse, g.contiguous(), mask, ctx.is_causal,
                         ctx.scale)
        need = ctx.needs_input_grad
        return dq if need[0] else None, dk if need[1] else None, dv if need[2] else None, None, None, None


def _check(query: Tensor, key: Tensor, value: Tensor) -> None:
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention(): argument '{name}' must be a Tensor, not "
                            f"{type(t).__name__}")
        if t.ndim < 2:
            raise RuntimeError(f"scaled_dot_product_attention: {name} must have at least 2 dimensions (..., "
                               f"T, E), got shape {tuple(t.shape)}")
    if not (query.dtype is key.dtype is value.dtype) or not query.dtype.is_floating_point:
        raise RuntimeError(f"Expected query, key, and value to have the same floating point dtype, but got "
                           f"query.dtype: {query.dtype} key.dtype: {key.dtype} and value.dtype: "
                           f"{value.dtype}")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"scaled_dot_product_attention: query and key must have the same embedding size, "
                           f"got query of shape {tuple(query.shape)} and key of shape {tuple(key.shape)}")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: key and value must have the same sequence length, "
                           f"got key of shape {tuple(key.shape)} and value of shape {tuple(value.shape)}")


def _repeat_kv(query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Grouped-query attention: each key/value head serves hq // hk consecutive query heads."""
    if query.ndim < 3 or key.ndim < 3 or value.ndim < 3:
        raise RuntimeError(f"enable_gqa needs a head dimension (..., H, T, E); got query "
                           f"{tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}")
    hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
    if hk != hv or hq % hk:
        raise RuntimeError(f"enable_gqa: the number of query heads ({hq}) must be a multiple of the number "
                           f"of key/value heads ({hk}, {hv}); shapes query {tuple(query.shape)}, key "
                           f"{tuple(key.shape)}, value {tuple(value.shape)}")
    groups = hq // hk
    if groups == 1:
        return key, value

    def repeat(t: Tensor) -> Tensor:
        lead = t.shape[:-3]
        t = t.unsqueeze(-3).expand(*lead, hk, groups, t.shape[-2], t.shape[-1])
        return t.reshape(*lead, hq, t.shape[-2], t.shape[-1])

    return repeat(key), repeat(value)


def _float_mask(attn_mask: Tensor, dtype: _dt.dtype) -> Tensor:

    if attn_mask.dtype is _dt.bool_:
        return where(attn_mask, 0.0, float("-inf")).to(dtype)
    if not attn_mask.dtype.is_floating_point:
        raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query dtype, got "
                           f"attn_mask.dtype: {attn_mask.dtype} and query.dtype: {dtype}")
    return attn_mask if attn_mask.dtype is dtype else attn_mask.to(dtype)


def _causal_keep(tq: int, tk: int, device) -> Tensor:

    return arange(tk, device=device).reshape(1, tk) <= arange(tq, device=device).reshape(tq, 1)


def _probabilities(q, k, mask, is_causal, scale):
    """softmax(q k^T scale + mask) through ordinary differentiable ops."""
    s = matmul(q, k.transpose(-2, -1)) * scale
    if is_causal:
        s = where(_causal_keep(q.shape[-2], k.shape[-2], q.device), s, float("-inf"))
    if mask is not None:
        s = s + mask
    # rows with every key masked: softmax of all -inf is NaN; PyTorch returns zeros there
    live = (s != float("-inf")).sum(-1, keepdim=True) > 0
    return where(live, softmax(where(live, s, 0.0), -1), 0.0)


def _composite(q, k, v, mask, dropout_p, is_causal, scale):
    """softmax(q k^T scale + mask) -> dropout -> @ v, through ordinary differentiable ops."""
    p = _probabilities(q, k, mask, is_causal, scale)
    if dropout_p > 0:
        p = dropout(p, dropout_p, training=True)
    return matmul(p, v)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(query key^T * scale + attn_mask) value over (..., L, E), (..., S, E), (..., S, Ev)."""

    query, key, value = cast_inputs(query, key, value)  # bf16/fp16 under tinyml.autocast
    _check(query, key, value)
    if attn_mask is not None and is_causal:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when "
                           "is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if query.shape[-1] == 0:
        scale = 1.0  # empty dot products: every score is 0 whatever the scale (PyTorch scales q and k first)
    else:
        scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if enable_gqa:
        key, value = _repeat_kv(query, key, value)
    tq, tk = query.shape[-2], key.shape[-2]
    try:
        batch = broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise RuntimeError(f"scaled_dot_product_attention: the batch dims of query {tuple(query.shape)}, key "
                           f"{tuple(key.shape)} and value {tuple(value.shape)} do not broadcast") from None
    query, key, value = (t if t.shape[:-2] == batch else t.expand(*batch, *t.shape[-2:])
                         for t in (query, key, value))
    mask = None
    if attn_mask is not None:
        full = batch + (tq, tk)
        try:
            fits = attn_mask.ndim <= len(full) and broadcast_shapes(attn_mask.shape, full) == full
        except RuntimeError:
            fits = False
        if not fits:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask of shape {tuple(attn_mask.shape)} "
                               f"is not broadcastable to the attention scores' shape {full}")
        mask = _float_mask(attn_mask, query.dtype)
    if dropout_p > 0 or (mask is not None and mask.requires_grad):
        return _composite(query, key, value, mask, dropout_p, is_causal, scale)

    # The kernels take (B, H, T, E): give 2-D and 3-D inputs unit dims, fold deeper batches into B.
    nb = len(batch)
    if nb == 2:
        q4, k4, v4 = query, key, value
    elif nb < 2:  # (T, E) -> (1, 1, T, E); (B, T, E) -> (B, 1, T, E)
        q4, k4, v4 = (t.reshape(*batch, *(1,) * (2 - nb), *t.shape[-2:]) for t in (query, key, value))
        if nb == 1 and mask is not None and mask.ndim == 3:
            mask = mask.unsqueeze(1)  # (B, L, S) against (B, 1, L, S)
    else:
        q4, k4, v4 = (t.reshape(-1, 1, *t.shape[-2:]) for t in (query, key, value))
        if mask is not None:
            mask = mask.expand(*batch, tq, tk).reshape(-1, 1, tq, tk)
    out = Attention.apply(q4.contiguous(), k4.contiguous(), v4.contiguous(),
                          None if mask is None else mask.contiguous(), bool(is_causal), scale)
    return out.reshape(*batch, tq, value.shape[-1])


def _unpack(qkv: Tensor, n_head: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, T, 3 H D) -> q, k, v (B, H, T, D) as differentiable views."""
    b, t, c3 = qkv.shape
    x = qkv.reshape(b, t, 3, n_head, c3 // (3 * n_head))
    return tuple(x[:, :, i].transpose(1, 2) for i in range(3))


class PackedAttention(Function):
    """out (B, T, H D) = attention of the q, k, v held in qkv (B, T, 3 H D); the gradient comes back
    in qkv's layout. Under create_graph=True backward uses the tensor-op formula of Attention."""

    @staticmethod
    def forward(ctx, qkv, n_head, is_causal, scale):
        out, lse = run("attention_packed_forward", qkv, n_head, is_causal, scale)
        ctx.save_for_backward(qkv, out, lse)
        ctx.n_head, ctx.is_causal, ctx.scale = n_head, is_causal, scale
        return out

    @staticmethod
    def backward(ctx, g):
        qkv, out, lse = ctx.saved_tensors
        if is_grad_enabled():  # create_graph: differentiable tensor ops, as Attention.backward
            q, k, v = _unpack(qkv, ctx.n_head)
            b, t, c = g.shape
            gh = g.reshape(b, t, ctx.n_head, c // ctx.n_head).transpose(1, 2)
            p = _probabilities(q, k, None, ctx.is_causal, ctx.scale)
            dp = matmul(gh, v.transpose(-2, -1))
            ds = p * (dp - (dp * p).sum(-1, keepdim=True)) * ctx.scale
            grads = (matmul(ds, k), matmul(ds.transpose(-2, -1), q), matmul(p.transpose(-2, -1), gh))
            return stack([d.transpose(1, 2) for d in grads], 2).reshape(qkv.shape), None, None, None
        dqkv = run("attention_packed_backward", qkv, out, lse, g.contiguous(), ctx.n_head, ctx.is_causal,
                   ctx.scale)
        return dqkv, None, None, None


def scaled_dot_product_attention_packed(qkv: Tensor, n_head: int, is_causal: bool = False,
                                        scale: float | None = None) -> Tensor:
    """Attention over the q, k, v of a fused projection: qkv (B, T, 3 H D) laid out (B, T, 3, H, D)
    -> (B, T, H D), equal to splitting qkv, viewing each part as (B, H, T, D), calling
    scaled_dot_product_attention and merging the heads back. scale defaults to 1 / sqrt(D)."""
    if not isinstance(qkv, Tensor):
        raise TypeError(f"scaled_dot_product_attention_packed(): qkv must be a Tensor, not "
                        f"{type(qkv).__name__}")
    (qkv,) = cast_inputs(qkv)  # bf16/fp16 under tinyml.autocast
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        raise ValueError(f"scaled_dot_product_attention_packed: n_head must be a positive int, got "
                         f"{n_head!r}")
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise RuntimeError(f"scaled_dot_product_attention_packed: expected qkv of shape (B, T, 3 * n_head * "
                           f"head_dim) with n_head={n_head}, got shape {tuple(qkv.shape)}")
    if not qkv.dtype.is_floating_point:
        raise RuntimeError(f"scaled_dot_product_attention_packed: expected a floating point qkv, got "
                           f"{qkv.dtype}")
    d = qkv.shape[-1] // (3 * n_head)
    scale = 1.0 if d == 0 else (1.0 / math.sqrt(d) if scale is None else float(scale))
    return PackedAttention.apply(qkv.contiguous(), n_head, bool(is_causal), scale)
