"""View kernels of the movement family for the cuda device: metadata only, no launch.

    expand(x, shape)   size-1 dims broadcast by stride 0
    view(x, shape)     a new shape over the same memory (PyTorch's computeStride rule)
    permute(x, dims)   the dims reordered

They live apart from movement.py, which registers them (it lists them in `__all__`), because
creation.py's copy_ and most other kernel modules need them too.
"""
from __future__ import annotations

import math

from ..cuda_array import CudaArray, contiguous_strides


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
