"""Reference movement kernels that reshape a tensor's view (numpy): expand, view, permute.

Each returns an array sharing the input's memory (writes through it reach the base). The views
that select part of a tensor are in slicing.py; the movement ops that copy in movement_copy.py.
"""
import numpy as np

__all__ = ["expand", "permute", "view"]


def expand(x, shape):
    return np.broadcast_to(x, shape)


def view(x, shape):
    """x with a new shape without copying; raises when the strides do not allow it."""
    try:
        return np.reshape(x, shape, copy=False)
    except ValueError:
        strides = tuple(s // x.itemsize for s in x.strides)
        raise RuntimeError(f"view size is not compatible with input tensor's size and stride (shape "
                           f"{x.shape}, strides {strides}, requested {tuple(shape)}); "
                           "use .reshape(...) instead") from None


def permute(x, dims):
    return np.transpose(x, dims)
