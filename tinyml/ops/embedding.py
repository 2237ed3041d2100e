"""Embedding family: the row lookup of an embedding table.

    embedding(ids, W):  y = W[ids]     dW = embedding_backward kernel: dW[ids[n]] += g[n], the
                                       padding_idx row left at 0
"""
from __future__ import annotations

from .. import dtypes as _dt
from .._graph import adjoint
from ..autograd import Function, is_grad_enabled
from ..backends import run
from ..tensor import Tensor

__all__ = ["embedding"]


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, ids, padding_idx):
        ctx.n, ctx.padding_idx = weight.shape[0], padding_idx
        ctx.save_for_backward(ids)
        return run("embedding_forward", weight, ids)

    @staticmethod
    def backward(ctx, g):
        (ids,) = ctx.saved_tensors
        dw = run("embedding_backward", ids, g, ctx.n, ctx.padding_idx)
        if is_grad_enabled():  # create_graph: dw is linear in g; d/dg takes the rows at ids again
            dw = adjoint(g, dw, Embedding.rows, ids, ctx.padding_idx)
        return dw, None, None

    @staticmethod
    def rows(gg, ids, padding_idx):
        """gg (n, D) at ids, 0 where ids == padding_idx (whose row gets no gradient)."""
        y = Embedding.apply(gg, ids, None)
        return y if padding_idx is None else y * (ids != padding_idx).unsqueeze(-1)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` (num_embeddings, D) at the int ids `input`: shape input.shape + (D,).
    Every id must lie in [0, num_embeddings): a negative id raises IndexError (as in PyTorch),
    it does not count from the end. The row at `padding_idx` gets no gradient."""
    if not isinstance(input, Tensor) or input.dtype not in (_dt.int64, _dt.int32):
        got = input.dtype if isinstance(input, Tensor) else type(input).__name__
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar "
                           f"types: Long, Int; but got {got} instead")
    if weight.ndim != 2:
        raise RuntimeError(f"'weight' must be 2-D, got shape {tuple(weight.shape)}")
    n = weight.shape[0]
    if padding_idx is None:
        pad = -1
    else:
        if not -n <= padding_idx < n:
            raise AssertionError(f"Padding_idx must be within num_embeddings (got {padding_idx} for {n} "
                                 "embeddings)")
        pad = padding_idx % n
    ids = input if input.dtype is _dt.int64 else input.to(_dt.int64)
    return Embedding.apply(weight, ids, pad)
