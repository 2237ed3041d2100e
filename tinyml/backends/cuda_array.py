"""CudaArray: the backend array of the cuda device (what `Tensor._data` holds there).

A CudaArray is (storage, offset, shape, strides, dtype) over one device allocation, like a
numpy array over a buffer: `shape`, byte `strides` and a numpy `dtype`, so the rest of tinyml
treats it as it treats numpy arrays. Views (expand, permute, reshape, slices) are new
CudaArrays over the same storage.

It also speaks the small protocol Triton needs: `data_ptr()` and `dtype` for a launch on the
GPU; and, for Triton's interpreter on host memory, `untyped_storage()`, `storage_offset()`,
`size()`, `stride()` (in elements), `new_empty()`, `set_()`, `cpu()` and `copy_()`.
"""
from __future__ import annotations

import math

import numpy as np

from . import cuda


class CudaStorage:
    """An untyped device allocation (one `cuda.Block`)."""

    __slots__ = ("block",)

    def __init__(self, nbytes: int):
        self.block = cuda.Block(nbytes)

    def data_ptr(self) -> int:
        return self.block.ptr

    def nbytes(self) -> int:
        return self.block.nbytes

    def cpu(self) -> CudaStorage:
        # Only Triton's interpreter asks, and only under host emulation, where the memory is
        # already host memory: the storage is its own host copy.
        return self

    def copy_(self, other: CudaStorage) -> CudaStorage:
        if other.data_ptr() != self.data_ptr():
            cuda.copy_device_to_device(self.data_ptr(), other.data_ptr(), min(self.nbytes(), other.nbytes()))
        return self


def contiguous_strides(shape, itemsize: int) -> tuple:
    strides, acc = [], itemsize
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


class CudaArray:
    __slots__ = ("storage", "offset", "shape", "strides", "dtype")
    __array_priority__ = -1

    def __init__(self, storage: CudaStorage, offset: int, shape, strides, dtype):
        self.storage = storage
        self.offset = int(offset)  # in elements
        self.shape = tuple(int(s) for s in shape)
        self.strides = tuple(int(s) for s in strides)  # in bytes, as numpy
        self.dtype = np.dtype(dtype)

    @classmethod
    def empty(cls, shape, dtype) -> CudaArray:
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        storage = CudaStorage(math.prod(shape) * dtype.itemsize)
        return cls(storage, 0, shape, contiguous_strides(shape, dtype.itemsize), dtype)

    # numpy-like metadata
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def numel(self) -> int:
        return math.prod(self.shape)

    def element_strides(self) -> tuple:
        return tuple(s // self.dtype.itemsize for s in self.strides)

    def is_contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.element_strides())):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    def as_strided(self, shape, element_strides, offset: int | None = None) -> CudaArray:
        """A view over the same storage."""
        return CudaArray(self.storage, self.offset if offset is None else offset, shape,
                         tuple(s * self.dtype.itemsize for s in element_strides), self.dtype)

    # the protocol Triton (and its interpreter) use
    def data_ptr(self) -> int:
        return self.storage.data_ptr() + self.offset * self.dtype.itemsize

    def untyped_storage(self) -> CudaStorage:
        return self.storage

    def storage_offset(self) -> int:
        return self.offset

    def size(self) -> tuple:
        return self.shape

    def stride(self) -> tuple:
        return self.element_strides()

    def new_empty(self, *size, device=None) -> CudaArray:
        return CudaArray(self.storage, 0, (0,), (self.dtype.itemsize,), self.dtype)

    def set_(self, storage: CudaStorage, offset: int, size, stride) -> CudaArray:
        self.storage, self.offset, self.shape = storage, int(offset), tuple(size)
        self.strides = tuple(s * self.dtype.itemsize for s in stride)
        return self

    def cpu(self) -> CudaArray:
        return self

    def copy_(self, other: CudaArray) -> CudaArray:
        return self

    def __repr__(self) -> str:
        return f"CudaArray(shape={self.shape}, dtype={self.dtype}, strides={self.element_strides()})"


def from_host(host: np.ndarray) -> CudaArray:
    arr = CudaArray.empty(host.shape, host.dtype)
    cuda.copy_host_to_device(arr.data_ptr(), host)
    return arr


def to_host_contiguous(arr: CudaArray) -> np.ndarray:
    """Copy a contiguous CudaArray to a new host array."""
    host = np.empty(arr.shape, dtype=arr.dtype)
    cuda.copy_device_to_host(host, arr.data_ptr())
    return host
