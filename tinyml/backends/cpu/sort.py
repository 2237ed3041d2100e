"""cpu adapters: sort, topk, kthvalue, median over rows (csrc/sort.cpp).

The sorted dim is moved last and the input made C-contiguous (rows, n); results come back in
the input's layout. float32/float64 and the integer types up to 64 bits run in C++ (bool as
uint8); float16/bfloat16 return NotImplemented: the numpy reference runs.
"""
import numpy as np

from . import _C

__all__ = ["kthvalue", "median", "sort", "topk"]

_TYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.int16, np.int8, np.uint8)}


def _rows(x, dim):
    """(rows (R, n) C-contiguous, moved shape) for x with dim moved last; None if C++ declines."""
    if _C is None or (x.dtype not in _TYPES and x.dtype != np.bool_) or x.ndim == 0:
        return None
    moved = np.moveaxis(x, dim, -1)
    rows = np.ascontiguousarray(moved).reshape(int(np.prod(moved.shape[:-1])), x.shape[dim])
    return (rows.view(np.uint8) if x.dtype == np.bool_ else rows), moved.shape


def _back(values, indices, moved_shape, dim, dtype, reduced):
    """(values, indices) from (R, m) rows to the input's layout (dim removed if `reduced`)."""
    values = values.view(dtype) if dtype == np.bool_ else values
    if reduced:
        shape = moved_shape[:-1]
        return values.reshape(shape), indices.reshape(shape)
    shape = moved_shape[:-1] + (values.shape[1],)
    return (np.moveaxis(values.reshape(shape), -1, dim), np.moveaxis(indices.reshape(shape), -1, dim))


def sort(x, dim, descending):
    got = _rows(x, dim)
    if got is None:
        return NotImplemented
    rows, moved = got
    return _back(*_C.sort_rows(rows, bool(descending)), moved, dim, x.dtype, False)


def topk(x, k, dim, largest):
    got = _rows(x, dim)
    if got is None:
        return NotImplemented
    rows, moved = got
    return _back(*_C.topk_rows(rows, int(k), bool(largest)), moved, dim, x.dtype, False)


def kthvalue(x, k, dim):
    got = _rows(x, dim)
    if got is None:
        return NotImplemented
    rows, moved = got
    return _back(*_C.kthvalue_rows(rows, int(k)), moved, dim, x.dtype, True)


def median(x, dim, ignore_nan):
    got = _rows(x, dim)
    if got is None:
        return NotImplemented
    rows, moved = got
    return _back(*_C.median_rows(rows, bool(ignore_nan)), moved, dim, x.dtype, True)
