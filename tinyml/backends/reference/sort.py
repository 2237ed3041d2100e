"""Reference sort-family kernels (numpy), along one dim; the oracle for csrc/sort.cpp and
backends/triton/sort.py.

Every kernel orders a row by one total order, so that all three backends pick the same indices:

    a before b  <=>  key(a) < key(b), or key(a) == key(b) and index(a) < index(b)

where NaN is the largest key (as in PyTorch) and -0.0 equals 0.0. Ascending order is numpy's
stable argsort; descending reverses the keys but keeps ties in index order (a stable descending
sort).

    sort(x, dim, descending)        (values, indices) of the whole row in that order
    topk(x, k, dim, largest)        the first k of the row in descending (largest) or ascending order
    kthvalue(x, k, dim)             the k-th (1-based) element of the ascending order; dim removed
    median(x, dim, ignore_nan)      the lower median: position (m - 1) // 2 of the ascending order,
                                    m the number of non-NaN elements; with a NaN in the row and
                                    ignore_nan False, the first NaN (value NaN, its index)
Indices are int64. The ops check k and the dim sizes before these run.
"""
import numpy as np

__all__ = ["kthvalue", "median", "sort", "topk"]


def _argsort(x, dim, descending):
    """Stable argsort along dim; descending keeps equal elements in index order (NaN first)."""
    if not descending:
        return np.argsort(x, axis=dim, kind="stable")
    # a stable ascending sort of the reversed row, read backwards, is a stable descending sort
    idx = np.flip(np.argsort(np.flip(x, dim), axis=dim, kind="stable"), dim)
    return x.shape[dim] - 1 - idx


def _take(x, idx, dim):
    return np.take_along_axis(x, idx, axis=dim), np.ascontiguousarray(idx, dtype=np.int64)


def sort(x, dim, descending):
    """(values, indices) of x sorted along dim (stable; NaN largest)."""
    return _take(x, _argsort(x, dim, descending), dim)


def topk(x, k, dim, largest):
    """The k largest (or smallest) along dim, in order, with their indices."""
    idx = np.take(_argsort(x, dim, largest), np.arange(k), axis=dim)
    return _take(x, idx, dim)


def kthvalue(x, k, dim):
    """The k-th smallest (1-based) along dim and its index; dim removed."""
    idx = np.take(_argsort(x, dim, False), [k - 1], axis=dim)
    values, idx = _take(x, idx, dim)
    return np.squeeze(values, dim), np.squeeze(idx, dim)


def median(x, dim, ignore_nan):
    """Lower median along dim (dim removed) and its index; NaN rows as the module docstring says."""
    n = x.shape[dim]
    order = _argsort(x, dim, False)
    if x.dtype.kind in "iub":
        nan_count = np.zeros(x.shape[:dim] + (1,) + x.shape[dim + 1:], np.int64)
    else:
        nan_count = np.sum(np.isnan(x), axis=dim, keepdims=True)
    m = n - nan_count  # NaNs sort last: positions m .. n-1
    pos = np.maximum((m - 1) // 2, 0)
    if not ignore_nan:
        pos = np.where(nan_count > 0, m, pos)  # the first NaN, in index order
    idx = np.take_along_axis(order, pos, axis=dim)
    values, idx = _take(x, idx, dim)
    return np.squeeze(values, dim), np.squeeze(idx, dim)
