"""max, min, amax, amin, argmax, argmin (ops/reduce_minmax.py) against PyTorch: forward and backward,
ties (the max-style gradients), on reference and cpu kernels, and on every backend of the family
(backend_device: the numpy reference, the cpu device's kernels, the Triton kernels)."""
# ruff: noqa: B023  (the lambdas built in loops are called at once, inside check_op)
import numpy as np
import torch
from family_devices import backend_device_fixture
from helpers import check_op
from reduce_helpers import dim_cases, with_zeros

import tinyml

backend_device = backend_device_fixture()
R = {"kind": "reduction"}


def test_max_min_over_all_split_ties(kernels):
    ties = np.array([[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]])
    for fn in (lambda x: x.max(), lambda x: x.min(), lambda x: x.amax((0, 1)), lambda x: x.amin(-1, True)):
        check_op([], fn, inputs=[ties])
    for shape in [(3, 4, 5), (), (1,)]:
        check_op([shape], lambda x: x.max(), noncontiguous=True)
        check_op([shape], lambda x: tinyml.min(x), lambda x: torch.min(x))


def test_max_min_with_dim(kernels):
    for name in ("max", "min"):
        for shape, dim, keepdim, nc in dim_cases():
            if dim is None or isinstance(dim, tuple):
                continue
            out = check_op([shape], lambda x: getattr(x, name)(dim, keepdim),
                           lambda x: getattr(x, name)(dim, keepdim), noncontiguous=nc)
            assert out.values is out[0] and out.indices.dtype is tinyml.int64
        # ties: the first extremum's index gets the whole gradient, as in PyTorch
        ties = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
        check_op([], lambda x: getattr(tinyml, name)(x, 1), lambda x: getattr(torch, name)(x, 1),
                 inputs=[ties])
        check_op([], lambda x: getattr(x, name)(dim=0, keepdim=True), inputs=[ties])


def test_max_binary_form_is_maximum(kernels):
    check_op([(3, 4), (4,)], lambda a, b: tinyml.max(a, b), lambda a, b: torch.max(a, b))
    check_op([(3, 4), (3, 4)], lambda a, b: a.min(b), lambda a, b: a.min(b))


def test_amax_amin_grad_ties_nd(kernels):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(4, 3, 5)).astype(np.float64)  # many ties
    for dim in [0, -1, (0, 2), None]:
        for keepdim in (False, True):
            for name in ("amax", "amin"):
                d = tuple(range(3)) if dim is None else dim
                check_op([], lambda t: getattr(t, name)(d, keepdim), inputs=[x])


def test_argmax_argmin(kernels):
    rng = np.random.default_rng(1)
    ties = rng.integers(0, 3, size=(4, 5, 3)).astype(np.float64)
    for name in ("argmax", "argmin"):
        for dim in [None, 0, -1, 1]:
            for keepdim in (False, True):
                check_op([], lambda x: getattr(x, name)(dim, keepdim), inputs=[ties], grad=False)
                check_op([(3, 4)], lambda x: getattr(tinyml, name)(x, dim=dim if dim != 1 else None,
                                                                    keepdim=keepdim),
                         lambda x: getattr(torch, name)(x, dim=dim if dim != 1 else None, keepdim=keepdim),
                         noncontiguous=True, grad=False)
        check_op([()], lambda x: getattr(x, name)(), grad=False)
        check_op([()], lambda x: getattr(x, name)(0, True), grad=False)
        check_op([(3, 5)], lambda x: getattr(x, name)(1), dtype="int32", grad=False)


# -- every backend of the family ------------------------------------------------------------------
def test_amax_amin_ties_and_nan(backend_device):
    check_op([(3, 4, 5)], lambda x: x.amax((0, 2)), device=backend_device, **R)
    check_op([(3, 40, 5)], lambda x: x.amin(1), noncontiguous=True, device=backend_device, **R)
    ties = np.array([[1, 2, 2, 0], [3, 3, 1, 1]], np.float32)
    check_op(None, lambda x: x.amax(1), inputs=[ties], device=backend_device, **R)
    check_op(None, lambda x: x.max(), inputs=[ties], device=backend_device, **R)
    nan = with_zeros()
    nan[0, 3] = np.nan
    check_op(None, lambda x: x.amax(1), inputs=[nan], grad=False, device=backend_device, **R)
    check_op(None, lambda x: x.max(1), inputs=[nan], grad=False, device=backend_device, **R)
    check_op(None, lambda x: x.argmin(1), inputs=[nan], grad=False, device=backend_device, **R)


def test_max_min_dim_and_arg(backend_device):
    check_op([(3, 4, 5)], lambda x: x.max(1), device=backend_device, **R)
    check_op([(3, 40, 5)], lambda x: x.min(0, keepdim=True), device=backend_device, **R)
    check_op([(3, 1500)], lambda x: x.argmax(1), grad=False, device=backend_device, **R)  # rows past a block
    check_op([(3, 40, 5)], lambda x: x.argmin(), grad=False, device=backend_device, **R)
    check_op([(4, 3)], lambda x: x.long().argmax(0), low=-5, high=5, grad=False, device=backend_device, **R)
    check_op([()], lambda x: x.max(0), device=backend_device, **R)
