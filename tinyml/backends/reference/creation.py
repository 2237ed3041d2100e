"""Reference kernels: creation, copies and casts (numpy). `np_dtype` arguments are numpy dtypes."""
import numpy as np

__all__ = ["empty", "full", "arange", "linspace", "eye", "from_host", "to_host", "cast", "clone", "contiguous",
           "copy_", "storage_offset"]


def empty(shape, np_dtype):
    return np.empty(shape, dtype=np_dtype)


def full(shape, fill_value, np_dtype):
    return np.full(shape, fill_value, dtype=np_dtype)


def arange(start, end, step, np_dtype):
    return np.arange(start, end, step).astype(np_dtype, copy=False)


def linspace(start, end, steps, np_dtype):
    return np.linspace(start, end, steps).astype(np_dtype, copy=False)


def eye(n, m, np_dtype):
    return np.eye(n, m, dtype=np_dtype)


def from_host(host_array):
    """A host numpy array as this backend's array (the cpu backend shares it)."""
    return host_array


def to_host(x):
    return x


def cast(x, np_dtype):
    if x.dtype.kind == "c" and np.dtype(np_dtype).kind != "c":
        x = x.real  # complex to real keeps the real part, as torch (numpy would warn)
    return x.astype(np_dtype)


def clone(x):
    return np.array(x, copy=True, order="C")


def contiguous(x):
    return np.ascontiguousarray(x)


def copy_(dst, src):
    """dst[...] = src, broadcasting src to dst's shape; casts to dst's dtype."""
    np.copyto(dst, src, casting="unsafe")
    return dst


def storage_offset(x):
    base = x
    while isinstance(base.base, np.ndarray):
        base = base.base
    start = x.__array_interface__["data"][0]
    return (start - base.__array_interface__["data"][0]) // x.itemsize
