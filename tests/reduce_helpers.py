"""Shared inputs of the reduction tests (tests/ops/test_reduce.py, test_reduce_minmax.py,
test_cumulative.py): the (shape, dim) cases and an array with zeros in telling places."""
import math

import numpy as np

# (shape, dim): int, negative, tuple, None, a size-1 dim, 0-d inputs
DIM_CASES = [((3, 4, 5), None), ((3, 4, 5), 1), ((3, 4, 5), -1), ((3, 4, 5), (0, 2)), ((3, 4, 5), (-1, 0)),
             ((3, 1, 4), 1), ((6,), 0), ((), None), ((), 0)]


def dim_cases(min_reduced=1):
    """(shape, dim, keepdim, noncontiguous) for every DIM_CASE with at least `min_reduced` elements
    per slice."""
    for shape, dim in DIM_CASES:
        dims = range(len(shape)) if dim is None else ((dim,) if isinstance(dim, int) else dim)
        n = math.prod(shape[d] for d in dims) if shape else 1
        if n < min_reduced:
            continue
        for keepdim in (False, True):
            yield shape, dim, keepdim, len(shape) >= 2 and keepdim


def with_zeros():
    """A (3, 6) float32 array whose rows hold one zero, two zeros and a zero at the end."""
    a = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    a[0, 2] = a[1, 1] = a[1, 4] = a[2, 5] = 0
    return a
