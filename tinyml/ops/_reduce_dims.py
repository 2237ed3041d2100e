"""Shared argument handling of the reductions: `dim` normalisation, keepdim shapes, empty checks.

Kernels always see `dims` as a sorted tuple of non-negative ints (never None), so the C++ and
Triton versions implement one case; a 0-d input reduces over `()`.
"""
from __future__ import annotations

from ..tensor import Tensor


def wrap_dim(dim, ndim: int, shape: tuple, name: str) -> int:
    """One dim in [-ndim, ndim) as a non-negative int (0-d tensors accept 0 and -1, as in PyTorch)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        if hasattr(dim, "__index__") and not isinstance(dim, bool):
            dim = dim.__index__()
        else:
            raise TypeError(f"{name}(): dim must be an int or a tuple of ints, got {type(dim).__name__} ({dim!r})")
    n = ndim if ndim else 1
    if not -n <= dim < n:
        raise IndexError(f"{name}(): Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got "
                         f"{dim}) for a tensor with {ndim} dimensions of shape {tuple(shape)}")
    return dim + n if dim < 0 else dim


def reduce_dims(dim, x: Tensor, name: str, empty_is_all: bool = True) -> tuple:
    """`dim` (int, tuple/list of ints, or None for all) as a sorted tuple of distinct dims of x.
    An empty tuple means all dims too, except for all/any, where PyTorch reduces nothing."""
    ndim = x.ndim
    if dim is None or (empty_is_all and isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(ndim))
    dims = (dim,) if not isinstance(dim, (tuple, list)) else tuple(dim)
    wrapped = [wrap_dim(d, ndim, x.shape, name) for d in dims]
    seen = set()
    for w in wrapped:
        if w in seen:
            raise RuntimeError(f"{name}(): dim {w} appears multiple times in the list of dims {dims}")
        seen.add(w)
    return tuple(sorted(wrapped)) if ndim else ()


def keepdim_shape(shape: tuple, dims: tuple) -> tuple:
    """`shape` with the reduced dims set to 1."""
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def unsqueeze_reduced(t: Tensor, in_shape: tuple, dims: tuple, keepdim: bool) -> Tensor:
    """A reduction's output (or its gradient) reshaped to keepdim form, so it broadcasts against
    the input: the reduced dims come back as size 1."""
    if keepdim or not dims:
        return t
    return t.reshape(keepdim_shape(in_shape, dims))


def reduced_numel(shape: tuple, dims: tuple) -> int:
    n = 1
    for d in dims:
        n *= shape[d]
    return n


def check_nonempty(x: Tensor, dims: tuple, name: str, dim_given: bool) -> None:
    """Reductions without an identity (max, min, amax, argmax, inf-norms) refuse empty slices."""
    if x.numel():
        return
    if not dim_given:
        if x.numel() == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify "
                               f"the reduction dim with the 'dim' argument (input shape {tuple(x.shape)}).")
        return
    for d in dims:
        if x.shape[d] == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim {d} to have non-zero size (input shape "
                               f"{tuple(x.shape)}).")
