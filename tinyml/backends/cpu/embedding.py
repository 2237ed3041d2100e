"""cpu adapter: embedding_backward, the thread-safe scatter-add of dy rows into dweight
(csrc/embedding.cpp). Ids become contiguous int64; float16/bfloat16 run the numpy reference."""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _embedding_backward(ids, dy, num_embeddings, padding_idx):
    if dy.dtype not in NATIVE_DTYPES or not np.issubdtype(ids.dtype, np.integer):
        return None
    ids = np.asarray(ids, dtype=np.int64, order="C")  # (asarray keeps a 0-d id 0-d)
    pad = -1 if padding_idx is None else int(padding_idx)
    return _C.embedding_backward(ids, np.asarray(dy, order="C"), int(num_embeddings), pad)


add_kernel("embedding_backward", "cpu", with_fallback("embedding_backward", _embedding_backward))
