"""Reference search and counting kernels (numpy): searchsorted, bincount, histc; the oracle for
csrc/search.cpp and backends/triton/search.py.

    searchsorted(seq (R, n), values (R, m), right)  per row, the insertion point of each value:
        left:  the first i with seq[i] >= v        right: the first i with seq[i] > v
        (n if none). A binary search with exactly these comparisons, as PyTorch's: a NaN value
        goes past every element (n), and the result for an unsorted row is whatever the search
        finds. R = 1 with a shared sequence broadcasts it over the values' rows.
    bincount(x (n,) int, weights or None, length)   counts[v] = #{i: x[i] == v} (or the sum of
        weights[i]) for v < length; the op checks x >= 0 and sizes length >= max(x) + 1
    histc(x, bins, low, high)                        counts of x in [low, high] over `bins` equal
        bins: bin = int((x - low) * bins / (high - low)) computed in x's dtype (PyTorch's order
        of operations), x == high in the last bin; NaN and values outside are skipped
"""
import numpy as np

__all__ = ["bincount", "histc", "searchsorted"]


def searchsorted(seq, values, right):
    """int64 insertion points of values (R, m) into the rows of seq (R or 1, n)."""
    rows, m = values.shape
    n = seq.shape[1]
    seq = np.broadcast_to(seq, (rows, n))
    lo = np.zeros((rows, m), np.int64)
    hi = np.full((rows, m), n, np.int64)
    row = np.arange(rows)[:, None]
    with np.errstate(invalid="ignore"):
        while True:
            active = lo < hi
            if not active.any():
                return lo
            mid = (lo + hi) // 2
            at = seq[row, np.minimum(mid, n - 1)]
            past = ~(at > values) if right else ~(at >= values)  # NaN compares false: go right
            lo = np.where(active & past, mid + 1, lo)
            hi = np.where(active & ~past, mid, hi)


def bincount(x, weights, length):
    """Counts (int64) or sums of weights per value in [0, length)."""
    if weights is None:
        return np.bincount(x.astype(np.int64), minlength=length).astype(np.int64)[:length]
    acc = np.float64 if weights.dtype.kind != "f" or weights.dtype == np.float64 else np.float32
    out = np.zeros(length, acc)
    np.add.at(out, x.astype(np.int64), weights.astype(acc))
    return out if weights.dtype.kind != "f" else out.astype(weights.dtype)


def histc(x, bins, low, high):
    """Histogram of x over [low, high] in `bins` bins, in x's dtype."""
    flat = x.reshape(-1)
    lo, hi = flat.dtype.type(low), flat.dtype.type(high)
    with np.errstate(invalid="ignore"):
        inside = (flat >= lo) & (flat <= hi)
        v = flat[inside]
        pos = ((v - lo) * flat.dtype.type(bins) / (hi - lo)).astype(np.int64)
    pos = np.minimum(pos, bins - 1)
    return np.bincount(pos, minlength=bins).astype(x.dtype)
