"""Reference indexing kernels (numpy): advanced indexing and nonzero (gather/scatter,
index_select/index_add and one_hot live in scatter.py, the embedding kernels in embedding.py).

Advanced indexing kernels take `indices` (a list of int arrays, broadcast together) and `dims`
(the dim of x each one indexes, increasing); the other dims are taken whole. Results follow
numpy's (and PyTorch's) placement: the broadcast index dims replace the indexed dims in place
when those are adjacent, else they come first.

    index:           y = x[idx]                            (out-of-range -> IndexError)
    index_backward:  dx = zeros(shape); dx[idx] += g       (repeated indices accumulate)
    index_put_:      x[idx] = value (or += with accumulate), in place
"""
import numpy as np

__all__ = ["index", "index_backward", "index_put_", "nonzero"]


def check_bounds(idx, size: int, dim: int) -> None:
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
        check_bounds(idx, x.shape[d], d)
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
        check_bounds(idx, x.shape[d], d)
    full = _full_index(x.ndim, indices, dims)
    if accumulate:
        np.add.at(x, full, value)
    else:
        x[full] = value
    return x


def nonzero(x):
    """(n, ndim) int64 coordinates of the nonzero elements, in row-major order."""
    return np.argwhere(x).astype(np.int64)
