"""Reference slicing kernels (numpy): views that select part of a tensor, and their adjoints.

    slice_view (basic indexing), diagonal_view: arrays sharing the input's memory
    slice_backward / diagonal_backward:  zeros(shape) with g written into the view (copies)
"""
import numpy as np

__all__ = ["diagonal_backward", "diagonal_view", "slice_backward", "slice_view"]


def slice_view(x, index):
    """x[index] for a normalised basic index: a tuple of in-range non-negative ints, slices with
    step > 0 and None (a new size-1 dim); one entry per consumed dim, trailing dims kept."""
    return x[tuple(index) + (Ellipsis,)]  # the Ellipsis keeps a 0-d result a view, not a scalar copy


def diagonal_view(x, offset, dim1, dim2):
    """The view y[..., i] = x[..., i, i + offset] (dims dim1, dim2 removed, the diagonal last)."""
    # np.diagonal returns a read-only view of a writable base; the view is safe to write through.
    d = np.diagonal(x, offset, dim1, dim2)
    if x.flags.writeable:
        d.flags.writeable = True
    return d


def slice_backward(g, shape, index):
    """dx = zeros(shape) with dx[index] = g: the adjoint of slice_view."""
    out = np.zeros(shape, dtype=g.dtype)
    out[tuple(index)] = g
    return out


def diagonal_backward(g, shape, offset, dim1, dim2):
    """dx = zeros(shape) with diagonal(dx, offset, dim1, dim2) = g."""
    out = np.zeros(shape, dtype=g.dtype)
    diagonal_view(out, offset, dim1, dim2)[...] = g
    return out
