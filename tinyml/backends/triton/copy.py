"""Triton kernels: creation, copies and casts for the cuda device.

    copy_(dst, src)   dst[...] = src: any strides, src broadcast (stride 0), dtype converted
    clone/contiguous  a contiguous copy;   cast(x, dtype)   a contiguous converted copy
    full/empty/arange/linspace/eye, from_host/to_host, storage_offset, and the view kernels
    expand/view/permute (metadata only, no launch).
Tests: TRITON_INTERPRET=1 python -m pytest tests/backends/test_triton.py
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from .. import cuda
from ..cuda_array import CudaArray, contiguous_strides, from_host as _upload, to_host_contiguous
from ._strided import BLOCK, grid, launch_strided, numel, strided_offsets

__all__ = ["empty", "full", "arange", "linspace", "eye", "from_host", "to_host", "cast", "clone", "contiguous",
           "copy_", "storage_offset", "expand", "view", "permute"]


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
        _copy_kernel[grid(count)](s, d, count, shape[1], shape[2], shape[3], *strides[0], *strides[1], BLOCK=BLOCK)

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
    elif np.dtype(np_dtype).kind == "f" and np.dtype(np_dtype).itemsize <= 4 or np.dtype(np_dtype) == np.bool_:
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


# -- view kernels: metadata only ------------------------------------------------------------------
def expand(x: CudaArray, shape) -> CudaArray:
    shape = tuple(shape)
    lead = len(shape) - x.ndim
    strides = [0] * lead + [0 if (s == 1 and t != 1) else st for s, t, st in
                            zip(x.shape, shape[lead:], x.element_strides())]
    return x.as_strided(shape, strides)


def view(x: CudaArray, shape) -> CudaArray:
    """A new shape over the same memory: any shape for contiguous inputs; for strided ones, dims
    split or merged within runs that are contiguous with each other (numpy's and PyTorch's rule)."""
    shape = tuple(int(s) for s in shape)
    if x.is_contiguous():
        return x.as_strided(shape, [s // x.itemsize for s in contiguous_strides(shape, x.itemsize)])
    strides = _view_strides(x.shape, x.element_strides(), shape)
    if strides is not None:  # e.g. unsqueeze of a transposed array, as numpy and PyTorch allow
        return x.as_strided(shape, strides)
    raise RuntimeError(f"view size is not compatible with input tensor's size and stride (shape {x.shape}, "
                       f"strides {x.element_strides()}, requested {shape}); use .reshape(...) instead")


def _view_strides(old_shape, old_strides, shape):
    """Strides for `shape` over a strided array without copying, or None (PyTorch's computeStride:
    dims may be split or merged only within runs that are contiguous with each other)."""
    if math.prod(old_shape) == 0 or not old_shape:
        return list(contiguous_strides(shape, 1))
    new = [0] * len(shape)
    view_d = len(shape) - 1
    base = old_strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[d]
        if d == 0 or (old_shape[d - 1] != 1 and old_strides[d - 1] != tensor_numel * base):
            while view_d >= 0 and (view_numel < tensor_numel or shape[view_d] == 1):
                new[view_d] = view_numel * base
                view_numel *= shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                base = old_strides[d - 1]
                tensor_numel = view_numel = 1
    return new if view_d == -1 else None


def permute(x: CudaArray, dims) -> CudaArray:
    st = x.element_strides()
    return x.as_strided(tuple(x.shape[d] for d in dims), tuple(st[d] for d in dims))
