"""cpu adapters: searchsorted, bincount, histc (csrc/search.cpp).

searchsorted runs float32/float64/int64/int32 in C++ (both operands share the dtype: the op
promotes them); bincount takes int64 ids (other int types are widened) with no, float32 or
float64 weights (others: the reference); histc float32/float64. Inputs are made C-contiguous.
"""
import numpy as np

from . import _C, contiguous

__all__ = ["bincount", "histc", "searchsorted"]

_SEARCH = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32)}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def searchsorted(seq, values, right):
    if _C is None or seq.dtype not in _SEARCH or values.dtype != seq.dtype:
        return NotImplemented
    return _C.searchsorted_rows(contiguous(seq), contiguous(values), bool(right))


def bincount(x, weights, length):
    if _C is None or x.dtype.kind not in "iu" or (weights is not None and weights.dtype not in _FLOATS):
        return NotImplemented
    ids = contiguous(x.astype(np.int64, copy=False))
    return _C.bincount(ids, None if weights is None else contiguous(weights), int(length))


def histc(x, bins, low, high):
    if _C is None or x.dtype not in _FLOATS:
        return NotImplemented
    return _C.histc(contiguous(x), int(bins), float(low), float(high))
