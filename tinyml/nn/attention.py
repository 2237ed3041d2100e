"""nn.MultiheadAttention (torch.nn.MultiheadAttention's arguments, parameter names and semantics).

With E = embed_dim, H = num_heads, d = E / H, query (L, N, E) and key/value (S, N, kdim/vdim):

    q = query W_q^T + b_q,  k = key W_k^T + b_k,  v = value W_v^T + b_v        split into H heads of d
    head_h = softmax(q_h k_h^T / sqrt(d) + mask) v_h                             (L, S) scores per head
    out = concat_h(head_h) W_o^T + b_o

mask is attn_mask ((L, S) or (N*H, L, S)) plus key_padding_mask ((N, S), broadcast over heads and
queries); a bool mask means True = not allowed (-inf), a float mask is added to the scores.
With need_weights=False the heads run through F.scaled_dot_product_attention (the fused kernel);
with need_weights=True the scores are formed explicitly so that the softmax weights can be returned
(averaged over heads when average_attn_weights).

State dict keys are torch's: in_proj_weight (3E, E) and in_proj_bias (3E,) when kdim == vdim == E,
otherwise q_proj_weight / k_proj_weight / v_proj_weight; bias_k / bias_v (1, 1, E) with
add_bias_kv; out_proj.weight / out_proj.bias.
"""

from __future__ import annotations

import math

from .. import dtypes, ops
from ..tensor import Tensor
from . import functional as F
from . import init
from .layers import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention"]


def canonical_mask(mask: Tensor | None, name: str, dtype) -> Tensor | None:
    """A bool mask (True = masked out) as an additive float mask of `dtype`; float masks pass through."""
    if mask is None:
        return None
    if mask.dtype == dtypes.bool_:
        return ops.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    if not mask.is_floating_point():
        raise AssertionError(f"only bool and floating types of {name} are supported, got {mask.dtype}")
    return mask.to(dtype)


class MultiheadAttention(Module):
    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                f"num_heads={num_heads} instead"
            )
        if embed_dim % num_heads != 0:
            raise AssertionError(
                f"embed_dim must be divisible by num_heads, got embed_dim={embed_dim} and "
                f"num_heads={num_heads}"
            )
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = (
            embed_dim,
            num_heads,
            dropout,
            batch_first,
        )
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        kw = {"device": device, "dtype": dtype}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(ops.empty((3 * embed_dim, embed_dim), **kw))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(ops.empty((embed_dim, embed_dim), **kw))
            self.k_proj_weight = Parameter(ops.empty((embed_dim, self.kdim), **kw))
            self.v_proj_weight = Parameter(ops.empty((embed_dim, self.vdim), **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(ops.empty((3 * embed_dim,), **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = Parameter(ops.empty((1, 1, embed_dim), **kw))
            self.bias_v = Parameter(ops.empty((1, 1, embed_dim), **kw))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's initialisation: xavier_uniform_ projections, zero biases, xavier_normal_ bias_k/v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:E], w[E : 2 * E], w[2 * E :]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """query (L, N, E) ((N, L, E) with batch_first, (L, E) unbatched), key (S, N, kdim), value
        (S, N, vdim). Returns (attn_output like query, weights (N, L, S) averaged over heads, or
        (N, H, L, S), or None when need_weights is False)."""
        if is_causal and attn_mask is None:
            raise RuntimeError(
                "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
                "module method `generate_square_subsequent_mask` to create this mask."
            )
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise AssertionError(
                f"query, key and value must all be 2-D (unbatched) or 3-D (batched), got shapes "
                f"{tuple(query.shape)}, {tuple(key.shape)} and {tuple(value.shape)}"
            )
        if not batched:  # (L, E) -> (L, 1, E); masks get their batch dim too
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:  # (N, L, E) -> (L, N, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        out, weights = self._attend(
            query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal
        )
        if not batched:
            return out.squeeze(1), None if weights is None else weights.squeeze(0)
        return (out.transpose(0, 1) if self.batch_first else out), weights

    def _check(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        L, N, E = query.shape
        if E != self.embed_dim:
            raise AssertionError(
                f"was expecting embedding dimension of {self.embed_dim}, but got {E} "
                f"(query shape {tuple(query.shape)})"
            )
        if key.shape[:2] != value.shape[:2] or key.shape[1] != N:
            raise AssertionError(
                f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)} "
                f"or query's batch size {N}"
            )
        if key.shape[2] != self.kdim or value.shape[2] != self.vdim:
            raise AssertionError(
                f"key/value feature sizes {key.shape[2]}/{value.shape[2]} differ from kdim/vdim "
                f"{self.kdim}/{self.vdim}"
            )

    def _attend(
        self, query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal
    ):
        self._check(query, key, value)
        L, N, E = query.shape
        H, d = self.num_heads, self.head_dim
        dtype = query.dtype
        attn_mask = canonical_mask(attn_mask, "attn_mask", dtype)
        key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", dtype)
        if attn_mask is not None:
            if attn_mask.ndim == 2:
                if tuple(attn_mask.shape) != (L, key.shape[0]):
                    raise RuntimeError(
                        f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                        f"{(L, key.shape[0])}."
                    )
                attn_mask = attn_mask.unsqueeze(0)
            elif attn_mask.ndim == 3:
                if tuple(attn_mask.shape) != (N * H, L, key.shape[0]):
                    raise RuntimeError(
                        f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                        f"{(N * H, L, key.shape[0])}."
                    )
            else:
                raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (N, key.shape[0]):
            raise AssertionError(
                f"expecting key_padding_mask shape of {(N, key.shape[0])}, but got "
                f"{tuple(key_padding_mask.shape)}"
            )
        q, k, v = self._project(query, key, value)  # (L, N, E), (S, N, E), (S, N, E)
        if self.bias_k is not None:  # one more key/value position, never masked
            k = ops.cat([k, self.bias_k.expand(1, N, E)], 0)
            v = ops.cat([v, self.bias_v.expand(1, N, E)], 0)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        q = q.reshape(L, N * H, d).transpose(0, 1)  # (N*H, L, d)
        k = k.reshape(k.shape[0], N * H, d).transpose(0, 1)  # (N*H, S, d)
        v = v.reshape(v.shape[0], N * H, d).transpose(0, 1)  # (N*H, S, d)
        if self.add_zero_attn:  # one more all-zero key/value position
            k = ops.cat([k, ops.zeros((N * H, 1, d), dtype=dtype, device=k.device)], 1)
            v = ops.cat([v, ops.zeros((N * H, 1, d), dtype=dtype, device=v.device)], 1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        S = k.shape[1]
        if key_padding_mask is not None:  # (N, S) -> (N*H, 1, S), merged into attn_mask
            kpm = key_padding_mask.reshape(N, 1, 1, S).expand(N, H, 1, S).reshape(N * H, 1, S)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            scores = (q * (1.0 / math.sqrt(d))) @ k.transpose(1, 2)  # (N*H, L, S)
            if attn_mask is not None:
                scores = scores + attn_mask
            weights = F.softmax(scores, dim=-1)
            if dropout_p > 0.0:
                weights = F.dropout(weights, p=dropout_p)
            heads = weights @ v  # (N*H, L, d)
            out = heads.transpose(0, 1).reshape(L * N, E)
            out = F.linear(out, self.out_proj.weight, self.out_proj.bias).reshape(L, N, E)
            weights = weights.reshape(N, H, L, S)
            return out, (weights.mean(1) if average_attn_weights else weights)
        if attn_mask is not None:  # (1 or N*H, L, S) -> broadcastable to (N, H, L, S)
            attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else attn_mask.reshape(N, H, -1, S)
        q4, k4, v4 = (t.reshape(N, H, t.shape[1], d) for t in (q, k, v))  # (N, H, T, d)
        heads = F.scaled_dot_product_attention(q4, k4, v4, attn_mask, dropout_p)  # (N, H, L, d)
        out = heads.permute(2, 0, 1, 3).reshape(L * N, E)
        out = F.linear(out, self.out_proj.weight, self.out_proj.bias).reshape(L, N, E)
        return out, None

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
