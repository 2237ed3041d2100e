"""Triton kernels: creation, copies and casts for the cuda device.

    copy_(dst, src)   dst[...] = src: any strides, src broadcast (stride 0), dtype converted
    clone/contiguous  a contiguous copy;   cast(x, dtype)   a contiguous converted copy
    full/empty/arange/linspace/eye, from_host/to_host, storage_offset
(the view kernels expand/view/permute are movement kernels: _view.py, registered by movement.py).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_creation.py -k cuda
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from .. import cuda
from ..cuda_array import CudaArray, to_host_contiguous
from ..cuda_array import from_host as _upload
from ._strided import BLOCK, grid, launch_strided, numel, strided_offsets
from ._view import expand

__all__ = ["empty", "full", "arange", "linspace", "eye", "from_host", "to_host", "cast", "clone",
           "contiguous", "copy_", "storage_offset"]


@triton.jit
def _copy_kernel(src, dst, n, s1, s2, s3, a0, a1, a2, a3, b0, b1, b2, b3, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    x = tl.load(src + strided_offsets(i, s1, s2, s3, a0, a1, a2, a3), mask=m)
    if x.dtype == tl.bfloat16 or x.dtype == tl.float16:
        x = x.to(tl.float32)
    tl.store(dst + strided_offsets(i, s1, s2, s3, b0, b1, b2, b3), x.to(dst.dtype.element_ty), mask=m)


@triton.jit
def _fill_kernel(dst, value, n, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(dst + i, tl.full((BLOCK,), value, tl.float32).to(dst.dtype.element_ty), mask=i < n)


def copy_(dst: CudaArray, src: CudaArray) -> CudaArray:
    """dst[...] = src, with src broadcast to dst's shape and converted to dst's dtype."""
    if src.shape != dst.shape:
        src = expand(src, dst.shape)
    n = numel(dst.shape)
    if n == 0:
        return dst
    if src.dtype == dst.dtype and src.is_contiguous() and dst.is_contiguous():
        cuda.copy_device_to_device(dst.data_ptr(), src.data_ptr(), dst.nbytes)
        return dst

    def launch(shape, strides, arrays):
        s, d = arrays
        count = math.prod(shape)
        _copy_kernel[grid(count)](s, d, count, shape[1], shape[2], shape[3], *strides[0], *strides[1],
                                  BLOCK=BLOCK)

    launch_strided(launch, dst.shape, [src, dst])
    return dst


def empty(shape, np_dtype) -> CudaArray:
    return CudaArray.empty(shape, np_dtype)


def full(shape, fill_value, np_dtype) -> CudaArray:
    out = CudaArray.empty(shape, np_dtype)
    n = numel(out.shape)
    if n == 0:
        return out
    if fill_value == 0:
        cuda.memset(out.data_ptr(), 0, out.nbytes)
    elif (np.dtype(np_dtype).kind == "f" and np.dtype(np_dtype).itemsize <= 4
          or np.dtype(np_dtype) == np.bool_):
        _fill_kernel[grid(n)](out, float(fill_value), n, BLOCK=BLOCK)
    else:  # float64 / int64 values a float32 launch argument could not hold exactly
        cuda.copy_host_to_device(out.data_ptr(), np.full(out.shape, fill_value, dtype=np_dtype))
    return out


# Small index-like tensors are built on the host and uploaded once.
def arange(start, end, step, np_dtype) -> CudaArray:
    return _upload(np.arange(start, end, step).astype(np_dtype, copy=False))


def linspace(start, end, steps, np_dtype) -> CudaArray:
    return _upload(np.linspace(start, end, steps).astype(np_dtype, copy=False))


def eye(n, m, np_dtype) -> CudaArray:
    return _upload(np.eye(n, m, dtype=np_dtype))


def from_host(host: np.ndarray) -> CudaArray:
    return _upload(np.require(host, requirements='C'))


def to_host(x: CudaArray) -> np.ndarray:
    return to_host_contiguous(x if x.is_contiguous() else contiguous(x))


def cast(x: CudaArray, np_dtype) -> CudaArray:
    return copy_(CudaArray.empty(x.shape, np_dtype), x)


def clone(x: CudaArray) -> CudaArray:
    return copy_(CudaArray.empty(x.shape, x.dtype), x)


def contiguous(x: CudaArray) -> CudaArray:
    return x if x.is_contiguous() else clone(x)


def storage_offset(x: CudaArray) -> int:
    return x.offset
