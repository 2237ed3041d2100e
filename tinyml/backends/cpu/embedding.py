"""cpu adapter: embedding_forward, the row gather W[ids], and embedding_backward, the thread-safe
scatter-add of dy rows into dweight (csrc/embedding.cpp). Ids become contiguous int64 and are
range-checked by the binding before it reads a row. The forward copies rows as bytes, so every
dtype runs in C++ (a non-contiguous weight runs the numpy reference); the backward runs
float32/float64 there and the numpy reference otherwise."""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _embedding_forward(weight, ids):
    # a strided weight (a transposed tied matrix) is gathered by numpy, not copied whole first
    if not np.issubdtype(ids.dtype, np.integer) or weight.ndim != 2 or not weight.flags.c_contiguous:
        return None
    return _C.embedding_forward(weight, np.asarray(ids, dtype=np.int64, order="C"))


def _embedding_backward(ids, dy, num_embeddings, padding_idx):
    if dy.dtype not in NATIVE_DTYPES or not np.issubdtype(ids.dtype, np.integer):
        return None
    ids = np.asarray(ids, dtype=np.int64, order="C")  # (asarray keeps a 0-d id 0-d)
    pad = -1 if padding_idx is None else int(padding_idx)
    return _C.embedding_backward(ids, np.asarray(dy, order="C"), int(num_embeddings), pad)


add_kernel("embedding_forward", "cpu", with_fallback("embedding_forward", _embedding_forward))
add_kernel("embedding_backward", "cpu", with_fallback("embedding_backward", _embedding_backward))
