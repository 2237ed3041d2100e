"""cpu adapter: embedding_forward, the row gather W[ids], and embedding_backward, the thread-safe
scatter-add of dy rows into dweight (csrc/embedding.cpp). Ids become contiguous int64 and are
range-checked by the binding before it reads a row. The forward copies rows as bytes, so every
dtype runs in C++ (a non-contiguous weight returns NotImplemented: the numpy reference gathers
it); the backward runs float32/float64 there and the numpy reference otherwise."""
import numpy as np

from . import _C, NATIVE_DTYPES

__all__ = ["embedding_forward", "embedding_backward"]


def embedding_forward(weight, ids):
    # a strided weight (a transposed tied matrix) is gathered by numpy, not copied whole first
    if not np.issubdtype(ids.dtype, np.integer) or weight.ndim != 2 or not weight.flags.c_contiguous:
        return NotImplemented
    return _C.embedding_forward(weight, np.asarray(ids, dtype=np.int64, order="C"))


def embedding_backward(ids, dy, num_embeddings, padding_idx):
    if dy.dtype not in NATIVE_DTYPES or not np.issubdtype(ids.dtype, np.integer):
        return NotImplemented
    ids = np.asarray(ids, dtype=np.int64, order="C")  # (asarray keeps a 0-d id 0-d)
    pad = -1 if padding_idx is None else int(padding_idx)
    return _C.embedding_backward(ids, np.asarray(dy, order="C"), int(num_embeddings), pad)
