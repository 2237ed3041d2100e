"""cpu adapters: fused cross-entropy forward and backward (csrc/loss.cpp).

Logits are made C-contiguous and targets int64; dloss is broadcast to (N,) (a reduced loss's
gradient may arrive as a scalar). float16/bfloat16 logits return NotImplemented: the numpy
reference runs.
"""
import numpy as np

from . import _C, contiguous, native

__all__ = ["cross_entropy_forward", "cross_entropy_backward"]


def _targets(target):
    return contiguous(target) if target.dtype == np.int64 else np.ascontiguousarray(target, dtype=np.int64)


def _takes(logits, target) -> bool:
    return native(logits) and logits.ndim == 2 and np.issubdtype(target.dtype, np.integer)


def cross_entropy_forward(logits, target, ignore_index, label_smoothing):
    if not _takes(logits, target):
        return NotImplemented
    return _C.cross_entropy_forward(contiguous(logits), _targets(target), int(ignore_index),
                                    float(label_smoothing))


def cross_entropy_backward(logits, target, row_max, log_sum, dloss, ignore_index, label_smoothing):
    if not (_takes(logits, target) and native(logits, row_max, log_sum)):
        return NotImplemented
    n = logits.shape[0]
    dloss = np.ascontiguousarray(np.broadcast_to(np.asarray(dloss, dtype=logits.dtype), (n,)))
    return _C.cross_entropy_backward(contiguous(logits), _targets(target), contiguous(row_max),
                                     contiguous(log_sum), dloss, int(ignore_index), float(label_smoothing))
