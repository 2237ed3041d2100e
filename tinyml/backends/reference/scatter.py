"""Reference gather/scatter kernels (numpy) along one dim: elementwise over index's shape, or whole
slices at a 1-D index (index_select/index_add); and one_hot.

    gather:       y[i][j][k] = x[i][index[i][j][k]][k]                (dim = 1)
    scatter:      y = x; y[i][index[i][j][k]][k] = src[i][j][k]       (reduce None), += ("add"),
                                                                       *= ("multiply")
    scatter_add:  y = x; y[i][index[i][j][k]][k] += src[i][j][k]       (repeated indices accumulate)
    index_select: y = x.take(index, dim)
    index_add:    y = x; y[.., index[i], ..] += alpha src[.., i, ..]  (repeated indices accumulate)
    one_hot:      y[..., c] = (x[...] == c)
Out-of-range indices raise IndexError naming index, dim and size (as every indexing kernel does).
"""
import numpy as np

from .indexing import _add_at_dim, check_bounds

__all__ = ["gather", "index_add", "index_select", "one_hot", "scatter", "scatter_add"]


def _grid(index, dim):
    """Index arrays addressing x[..., index, ...]: `index` along dim, the position elsewhere."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


def _check_scatter(x, dim, index, src, name):
    if index.ndim != x.ndim:
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as self "
                           f"tensor (index shape {index.shape}, self shape {x.shape})")
    for d in range(x.ndim):
        if (d != dim and index.shape[d] > x.shape[d]) or (src is not None and index.shape[d] > src.shape[d]):
            raise RuntimeError(f"Size does not match at dimension {d} expected index {list(index.shape)} "
                               f"to be no larger than self {list(x.shape)} apart from dimension {dim}"
                               + ("" if src is None else f" and to be no larger than src {list(src.shape)}"))
    check_bounds(index, x.shape[dim], dim)


def gather(x, dim, index):
    """y = x[..., index, ...] along dim, elementwise over index's shape (y.shape == index.shape)."""
    _check_scatter(x, dim, index, None, "gather")
    return x[_grid(index, dim)]


def _src_part(src, index):
    """The part of src that index addresses (src may be larger than index), or a scalar."""
    if not isinstance(src, np.ndarray):
        return src
    return src[tuple(slice(0, n) for n in index.shape)]


def scatter(x, dim, index, src, reduce):
    """y = x; y[..., index[i], ...] = src[i] (reduce None), += ('add') or *= ('multiply')."""
    _check_scatter(x, dim, index, src if isinstance(src, np.ndarray) else None, "scatter")
    out = np.array(x, copy=True)
    grid, val = _grid(index, dim), _src_part(src, index)
    if reduce is None:
        out[grid] = val
    elif reduce == "add":
        np.add.at(out, grid, np.broadcast_to(np.asarray(val, dtype=out.dtype), index.shape))
    else:
        np.multiply.at(out, grid, np.broadcast_to(np.asarray(val, dtype=out.dtype), index.shape))
    return out


def scatter_add(x, dim, index, src):
    """y = x; y[..., index[i], ...] += src[i] (repeated indices accumulate)."""
    return scatter(x, dim, index, src, "add")


def index_select(x, dim, index):
    """y = x with dim `dim` replaced by x's slices at the 1-D `index`."""
    check_bounds(index, x.shape[dim], dim)
    return np.take(x, index, axis=dim)


def index_add(x, dim, index, source, alpha):
    """y = x; y[.., index[i], ..] += alpha * source[.., i, ..] (repeated indices accumulate)."""
    check_bounds(index, x.shape[dim], dim)
    src = source if alpha == 1 else (source * alpha).astype(x.dtype, copy=False)
    return _add_at_dim(np.array(x, copy=True, order="C"), dim, index, src)


def one_hot(x, num_classes):
    """y[..., c] = (x[...] == c) as int64; num_classes -1 means x.max() + 1."""
    if x.size and x.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        num_classes = int(x.max()) + 1 if x.size else 0
    elif x.size and x.max() >= num_classes:
        raise RuntimeError(f"Class values must be smaller than num_classes (got {int(x.max())} with "
                           f"num_classes={num_classes}).")
    return (x[..., None] == np.arange(num_classes)).astype(np.int64)
