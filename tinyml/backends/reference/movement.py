"""Reference movement kernels (numpy).

View kernels return arrays sharing the input's memory (writes through them reach the base):
    expand, view, permute, slice_view (basic indexing), diagonal_view
Copy kernels return new arrays:
    slice_backward / diagonal_backward:  zeros(shape) with g written into the view
    repeat (np.tile), repeat_interleave (np.repeat), cat, flip, roll, tril, triu, pad_constant
"""
import numpy as np

__all__ = ["cat", "diagonal_backward", "diagonal_view", "expand", "flip", "pad_constant", "permute", "repeat",
           "repeat_interleave", "roll", "slice_backward", "slice_view", "tril", "triu", "view"]


def expand(x, shape):
    return np.broadcast_to(x, shape)


def view(x, shape):
    """x with a new shape without copying; raises when the strides do not allow it."""
    try:
        return np.reshape(x, shape, copy=False)
    except ValueError:
        raise RuntimeError(f"view size is not compatible with input tensor's size and stride (shape "
                           f"{x.shape}, strides {tuple(s // x.itemsize for s in x.strides)}, requested {tuple(shape)}); "
                           "use .reshape(...) instead") from None


def permute(x, dims):
    return np.transpose(x, dims)


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


def repeat(x, repeats):
    """y = x tiled `repeats[i]` times along dim i (x padded with leading size-1 dims)."""
    return np.tile(x, repeats)


def repeat_interleave(x, repeats, dim):
    """Each slice of x along `dim` repeated `repeats` times (an int, or an int array, one per slice)."""
    return np.repeat(x, repeats, axis=dim)


def cat(xs, dim):
    """Concatenation along `dim` of arrays of one dtype and equal sizes elsewhere."""
    return np.concatenate(xs, axis=dim)


def flip(x, dims):
    return np.flip(x, dims).copy()


def roll(x, shifts, dims):
    """y[..., (i + s) mod n, ...] = x[..., i, ...] for each (shift s, dim) pair."""
    return np.roll(x, shifts, dims)


def tril(x, diagonal):
    """x with entries above the `diagonal`-th diagonal of the last two dims set to 0."""
    return np.tril(x, diagonal)


def triu(x, diagonal):
    """x with entries below the `diagonal`-th diagonal of the last two dims set to 0."""
    return np.triu(x, diagonal)


def pad_constant(x, pads, value):
    """x padded with `value`; pads = ((before, after), ...) non-negative, one pair per dim."""
    return np.pad(x, pads, mode="constant", constant_values=value)
