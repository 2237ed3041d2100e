"""cpu adapters: fused cross-entropy forward and backward (csrc/loss.cpp).

Logits are made C-contiguous and targets int64; dloss is broadcast to (N,) (a reduced loss's
gradient may arrive as a scalar). float16/bfloat16 logits run the numpy reference.
"""
import numpy as np

from .. import add_kernel
from . import _C, NATIVE_DTYPES, with_fallback


def _c(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _targets(target):
    return _c(target) if target.dtype == np.int64 else np.ascontiguousarray(target, dtype=np.int64)


def _native(logits, target) -> bool:
    return logits.dtype in NATIVE_DTYPES and logits.ndim == 2 and np.issubdtype(target.dtype, np.integer)


def _cross_entropy_forward(logits, target, ignore_index, label_smoothing):
    if not _native(logits, target):
        return None
    return _C.cross_entropy_forward(_c(logits), _targets(target), int(ignore_index), float(label_smoothing))


def _cross_entropy_backward(logits, target, row_max, log_sum, dloss, ignore_index, label_smoothing):
    if not _native(logits, target) or row_max.dtype != logits.dtype or log_sum.dtype != logits.dtype:
        return None
    n = logits.shape[0]
    dloss = np.ascontiguousarray(np.broadcast_to(np.asarray(dloss, dtype=logits.dtype), (n,)))
    return _C.cross_entropy_backward(_c(logits), _targets(target), _c(row_max), _c(log_sum), dloss,
                                     int(ignore_index), float(label_smoothing))


add_kernel("cross_entropy_forward", "cpu", with_fallback("cross_entropy_forward", _cross_entropy_forward))
add_kernel("cross_entropy_backward", "cpu", with_fallback("cross_entropy_backward", _cross_entropy_backward))
