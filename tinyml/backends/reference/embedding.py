"""Reference embedding kernels (numpy).

    embedding_forward:  y = W[ids]                         (ids in [0, V), else IndexError: -1 is
                                                           not the last row, unlike index)
    embedding_backward: dW[ids[n]] += dy[n]; dW[padding_idx] = 0
"""
import numpy as np

from .indexing import _add_at_dim  # the scatter-add that index_backward uses too

__all__ = ["embedding_backward", "embedding_forward"]


def check_embedding_ids(lo: int, hi: int, num_embeddings: int) -> None:
    """IndexError unless every id lies in [0, num_embeddings), given their min and max (every
    backend's embedding_forward raises this same message)."""
    if lo < 0 or hi >= num_embeddings:
        bad = lo if lo < 0 else hi
        raise IndexError(f"index {bad} is out of range for an embedding of {num_embeddings} rows "
                         f"(ids must be in [0, {num_embeddings}))")


def embedding_forward(weight, ids):
    """y (ids.shape + (D,)) = weight[ids] for a (num_embeddings, D) weight; negative ids raise."""
    if ids.size:
        check_embedding_ids(int(ids.min()), int(ids.max()), weight.shape[0])
    return weight[ids]


def embedding_backward(ids, dy, num_embeddings, padding_idx):
    """dweight (num_embeddings, D): row r = sum of dy over positions with ids == r; padding_idx
    (>= 0; -1 for none) gets no gradient."""
    d = dy.shape[-1]
    out = _add_at_dim(np.zeros((num_embeddings, d), dtype=dy.dtype), 0, ids.reshape(-1), dy.reshape(-1, d))
    if padding_idx >= 0:
        out[padding_idx] = 0
    return out
