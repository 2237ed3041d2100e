"""Reference view kernels (numpy): each returns a view sharing the input's memory."""
import numpy as np

__all__ = ["expand", "view", "permute"]


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
