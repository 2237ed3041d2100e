"""Triton kernels: the embedding lookup for the cuda device, over the indexing kernels.

    embedding_forward(W, ids)   W[ids], ids checked to lie in [0, V) (-1 raises, as in PyTorch)
    embedding_backward          index_backward of the weight rows, padding row zeroed
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_embedding.py
"""
from __future__ import annotations

from ..cuda_array import CudaArray
from ..reference.embedding import check_embedding_ids
from ._view import view
from .creation import contiguous, copy_, full
from .indexing import _run, index_backward, int_range

__all__ = ["embedding_backward", "embedding_forward"]


def embedding_forward(weight: CudaArray, ids: CudaArray) -> CudaArray:
    """weight[ids]: ids.shape + (D,), every id in [0, num_embeddings) (one min/max sync)."""
    if ids.numel():
        check_embedding_ids(*int_range(ids), weight.shape[0])
    return _run(weight, [ids], (0,), None, "get")  # dims (0,): already in numpy's placement


def embedding_backward(ids: CudaArray, dy: CudaArray, num_embeddings, padding_idx) -> CudaArray:
    """dW (num_embeddings, D): row r = sum of dy where ids == r; padding_idx's row stays 0."""
    d = dy.shape[-1]
    flat_ids = view(contiguous(ids), (ids.numel(),))
    out = index_backward(view(contiguous(dy), (ids.numel(), d)), (num_embeddings, d), [flat_ids], (0,))
    if padding_idx >= 0:
        copy_(out.as_strided((d,), (1,), out.offset + padding_idx * d), full((d,), 0, out.dtype))
    return out
