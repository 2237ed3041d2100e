"""Triton kernels: reductions for the cuda device.

    sum(x, dims, keepdim, dtype)   the reduced dims are moved last (a strided copy when they are
                                   not already), then each output element sums one contiguous row
                                   in float32 (float64 / int64 for those dtypes).
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_reduce.py -k cuda
"""
from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl

from ..cuda_array import CudaArray
from ._view import permute, view
from .creation import contiguous, full

__all__ = ["sum"]


@triton.jit
def _sum_rows_kernel(x, out, R, ACC: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros((BLOCK,), dtype=ACC)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        v = tl.load(x + row * R + offs, mask=offs < R, other=0)
        acc += v.to(ACC)
    tl.store(out + row, tl.sum(acc, 0).to(out.dtype.element_ty))


def accumulator(dtype: np.dtype):
    if dtype == np.float64:
        return tl.float64
    if dtype.kind in "iub":
        return tl.int64
    return tl.float32


def to_rows(x: CudaArray, dims: tuple) -> tuple[CudaArray, tuple, int]:
    """x with `dims` moved last and made contiguous: (rows array, kept shape, row length)."""
    keep = [d for d in range(x.ndim) if d not in dims]
    kept_shape = tuple(x.shape[d] for d in keep)
    R = math.prod(x.shape[d] for d in dims)
    xp = permute(x, keep + list(dims)) if list(dims) != list(range(len(keep), x.ndim)) else x
    xp = contiguous(xp)
    return view(xp, (math.prod(kept_shape), R)), kept_shape, R


def reduced_shape(shape: tuple, dims: tuple, keepdim: bool) -> tuple:
    if keepdim:
        return tuple(1 if d in dims else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in dims)


def sum(x: CudaArray, dims, keepdim, np_dtype) -> CudaArray:
    dims = tuple(dims)
    rows, kept_shape, R = to_rows(x, dims)
    n_rows = rows.shape[0]
    out = CudaArray.empty((n_rows,), np_dtype)
    if n_rows:
        if R == 0:
            out = full((n_rows,), 0, np_dtype)
        else:
            block = min(triton.next_power_of_2(R), 1024)
            _sum_rows_kernel[(n_rows,)](rows, out, R, ACC=accumulator(np.dtype(np_dtype)), BLOCK=block)
    return view(out, reduced_shape(x.shape, dims, keepdim))
