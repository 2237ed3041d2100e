"""Triton kernels: slicing, the views that select part of a tensor, for the cuda device.

    slice_view (basic indexing), diagonal_view   metadata only, no launch
    slice_backward / diagonal_backward           zeros, then g copied into the slice / diagonal
                                                 view (copy_ of creation.py: any strides)
Tests: TRITON_INTERPRET=1 python -m pytest tests/ops/test_movement.py -k cuda
"""
from __future__ import annotations

from ..cuda_array import CudaArray
from .creation import copy_, full

__all__ = ["diagonal_backward", "diagonal_view", "slice_backward", "slice_view"]


def slice_view(x: CudaArray, index) -> CudaArray:
    """x[index] for a normalised basic index: non-negative ints, slices with step > 0 and None
    (a new size-1 dim), one entry per consumed dim; trailing dims kept."""
    shape, strides = [], []
    offset = x.offset
    st = x.element_strides()
    d = 0
    for item in index:
        if item is None:
            shape.append(1)
            strides.append(0)
        elif isinstance(item, slice):
            start, stop, step = item.indices(x.shape[d])
            n = max(0, (stop - start + step - 1) // step)
            offset += start * st[d] if n else 0
            shape.append(n)
            strides.append(st[d] * step)
            d += 1
        else:
            i = int(item)
            offset += i * st[d]
            d += 1
    shape += x.shape[d:]
    strides += st[d:]
    return x.as_strided(tuple(shape), tuple(strides), offset)


def diagonal_view(x: CudaArray, offset, dim1, dim2) -> CudaArray:
    """y[..., i] = x[..., i, i + offset]: dims dim1, dim2 removed, the diagonal appended last."""
    st = x.element_strides()
    n1, n2 = x.shape[dim1], x.shape[dim2]
    if offset >= 0:
        n = max(0, min(n1, n2 - offset))
        start = offset * st[dim2]
    else:
        n = max(0, min(n1 + offset, n2))
        start = -offset * st[dim1]
    keep = [d for d in range(x.ndim) if d not in (dim1, dim2)]
    shape = tuple(x.shape[d] for d in keep) + (n,)
    strides = tuple(st[d] for d in keep) + (st[dim1] + st[dim2],)
    return x.as_strided(shape, strides, x.offset + (start if n else 0))


def slice_backward(g: CudaArray, shape, index) -> CudaArray:
    """zeros(shape) with out[index] = g."""
    out = full(tuple(shape), 0, g.dtype)
    copy_(slice_view(out, index), g)
    return out


def diagonal_backward(g: CudaArray, shape, offset, dim1, dim2) -> CudaArray:
    """zeros(shape) with diagonal(out, offset, dim1, dim2) = g."""
    out = full(tuple(shape), 0, g.dtype)
    copy_(diagonal_view(out, offset, dim1, dim2), g)
    return out
