"""cpu adapters: sort, topk, kthvalue, median over rows (csrc/sort.cpp).

The sorted dim is moved last and the input made C-contiguous (rows, n); results come back in
the input's layout. float32/float64 and the integer types up to 64 bits run in C++ (bool as
uint8); float16/bfloat16 return NotImplemented: the numpy reference runs.
"""
import numpy as np

from . import _C

__all__ = ["kthvalue", "median", "sort", "topk"]

_TYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.int16, np.int8, np.uint8)}


def _over_rows(x, dim, reduced, row_kernel):
    """row_kernel(rows) -> (values, indices) of shape (R, m) over x's rows along dim (dim moved
    last, made C-contiguous (R, n); bool as uint8), put back in x's layout (dim removed if
    `reduced`); NotImplemented for the dtypes C++ declines."""
    if _C is None or (x.dtype not in _TYPES and x.dtype != np.bool_) or x.ndim == 0:
        return NotImplemented
    moved = np.moveaxis(x, dim, -1)
    rows = np.ascontiguousarray(moved).reshape(int(np.prod(moved.shape[:-1])), x.shape[dim])
    values, indices = row_kernel(rows.view(np.uint8) if x.dtype == np.bool_ else rows)
    values = values.view(x.dtype) if x.dtype == np.bool_ else values
    if reduced:
        shape = moved.shape[:-1]
        return values.reshape(shape), indices.reshape(shape)
    shape = moved.shape[:-1] + (values.shape[1],)
    return (np.moveaxis(values.reshape(shape), -1, dim), np.moveaxis(indices.reshape(shape), -1, dim))


def sort(x, dim, descending):
    return _over_rows(x, dim, False, lambda rows: _C.sort_rows(rows, bool(descending)))


def topk(x, k, dim, largest):
    return _over_rows(x, dim, False, lambda rows: _C.topk_rows(rows, int(k), bool(largest)))


def kthvalue(x, k, dim):
    return _over_rows(x, dim, True, lambda rows: _C.kthvalue_rows(rows, int(k)))


def median(x, dim, ignore_nan):
    return _over_rows(x, dim, True, lambda rows: _C.median_rows(rows, bool(ignore_nan)))
