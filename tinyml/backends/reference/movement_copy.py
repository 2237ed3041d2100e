"""Reference movement kernels that copy (numpy): new arrays, never views of the input.

    repeat (np.tile), repeat_interleave (np.repeat), cat, flip, roll, tril, triu, pad_constant
"""
import numpy as np

__all__ = ["cat", "flip", "pad_constant", "repeat", "repeat_interleave", "roll", "tril", "triu"]


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
