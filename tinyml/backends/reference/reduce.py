"""Reference reduction kernels (numpy)."""
import numpy as np

__all__ = ["sum"]


def sum(x, dims, keepdim, np_dtype):
    return np.sum(x, axis=dims, keepdims=keepdim, dtype=np_dtype)
