"""Reference indexing kernels (numpy): advanced indexing, gather/scatter, index_select/index_add,
nonzero, one_hot and the embedding gradient.

Advanced indexing kernels take `indices` (a list of int arrays, broadcast together) and `dims`
(the dim of x each one indexes, increasing); the other dims are taken whole. Results follow
numpy's (and PyTorch's) placement: the broadcast index dims replace the indexed dims in place
when those are adjacent, else they come first.

    index:           y = x[idx]                            (out-of-range -> IndexError)
    index_backward:  dx = zeros(shape); dx[idx] += g       (repeated indices accumulate)
    index_put_:      x[idx] = value (or += with accumulate), in place
    gather:          y[i][j][k] = x[i][index[i][j][k]][k]  (dim = 1)
    scatter_add:     y = x; y[i][index[i][j][k]][k] += src[i][j][k]
    index_select:    y = x.take(index, dim)
    index_add:       y = x; y[.., index[i], ..] += alpha src[.., i, ..]
    embedding_forward: y = W[ids]                          (ids in [0, V), else IndexError: -1 is
                                                           not the last row, unlike index)
    embedding_backward: dW[ids[n]] += dy[n]; dW[padding_idx] = 0
"""
import numpy as np

__all__ = ["embedding_backward", "embedding_forward", "gather", "index", "index_add", "index_backward",
           "index_put_", "index_select", "nonzero", "one_hot", "scatter", "scatter_add"]


def _check_bounds(idx, size: int, dim: int) -> None:
    if idx.size == 0:
        return
    lo, hi = idx.min(), idx.max()
    if lo < -size or hi >= size:
        bad = int(hi if hi >= size else lo)
        raise IndexError(f"index {bad} is out of bounds for dimension {dim} with size {size}")


def _full_index(ndim: int, indices, dims) -> tuple:
    full = [slice(None)] * ndim
    for idx, d in zip(indices, dims):
        full[d] = idx
    return tuple(full)


def _add_at_dim(out, dim, index, src):
    """out[.., index[i], ..] += src[.., i, ..] for a C-contiguous `out` and a 1-D in-range `index`.

    Same as np.add.at(out, (slice(None),) * dim + (index,), src), but through flat positions:
    numpy's 1-D add.at is several times faster than its multi-dimensional form."""
    shape = out.shape
    pre, n, post = int(np.prod(shape[:dim])), shape[dim], int(np.prod(shape[dim + 1:]))
    rows = np.arange(pre, dtype=np.int64)[:, None] * n + np.where(index < 0, index + n, index)[None, :]
    pos = rows[:, :, None] * post + np.arange(post, dtype=np.int64)[None, None, :]
    np.add.at(out.reshape(-1), pos.reshape(-1), np.reshape(src, -1))
    return out


def index(x, indices, dims):
    """x[idx] with int arrays at `dims` and whole slices elsewhere (a copy)."""
    for idx, d in zip(indices, dims):
        _check_bounds(idx, x.shape[d], d)
    return x[_full_index(x.ndim, indices, dims)]


def index_backward(g, shape, indices, dims):
    """The adjoint of `index`: g scattered (added) into zeros of x's shape."""
    out = np.zeros(shape, dtype=g.dtype)
    if len(indices) == 1:  # one index tensor: its dims sit in place of dims[0]
        return _add_at_dim(out, dims[0], indices[0].reshape(-1), g)
    np.add.at(out, _full_index(len(shape), indices, dims), g)
    return out


def index_put_(x, indices, dims, value, accumulate):
    """x[idx] = value (value an array of the indexed shape, or a scalar); += when accumulate."""
    for idx, d in zip(indices, dims):
        _check_bounds(idx, x.shape[d], d)
    full = _full_index(x.ndim, indices, dims)
    if accumulate:
        np.add.at(x, full, value)
    else:
        x[full] = value
    return x


def nonzero(x):
    """(n, ndim) int64 coordinates of the nonzero elements, in row-major order."""
    return np.argwhere(x).astype(np.int64)


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
    _check_bounds(index, x.shape[dim], dim)


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
    _check_bounds(index, x.shape[dim], dim)
    return np.take(x, index, axis=dim)


def index_add(x, dim, index, source, alpha):
    """y = x; y[.., index[i], ..] += alpha * source[.., i, ..] (repeated indices accumulate)."""
    _check_bounds(index, x.shape[dim], dim)
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


def check_embedding_ids(lo: int, hi: int, num_embeddings: int) -> None:
    """IndexError unless every id lies in [0, num_embeddings), given their min and max (every
    backend's embedding_forward raises this same message)."""
    if lo < 0 or hi >= num_embeddings:
        bad = lo if lo < 0 else hi
        raise IndexError(f"index {bad} is out of range for an embedding of {num_embeddings} rows "
                         f"(ids must be in [0, {num_embeddings}))")


def embedding_forward(weight, ids):
    """y (ids.shape + (D,)) = weight[ids] for a (num_embeddings, D) weight; negative ids raise."""
    if ids.size:
        check_embedding_ids(int(ids.min()), int(ids.max()), weight.shape[0])
    return weight[ids]


def embedding_backward(ids, dy, num_embeddings, padding_idx):
    """dweight (num_embeddings, D): row r = sum of dy over positions with ids == r; padding_idx
    (>= 0; -1 for none) gets no gradient."""
    d = dy.shape[-1]
    out = _add_at_dim(np.zeros((num_embeddings, d), dtype=dy.dtype), 0, ids.reshape(-1), dy.reshape(-1, d))
    if padding_idx >= 0:
        out[padding_idx] = 0
    return out
