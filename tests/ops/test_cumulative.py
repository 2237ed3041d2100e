"""cumsum and cumprod (ops/cumulative.py) against PyTorch: forward and backward, zeros in cumprod's
gradient, on reference and cpu kernels, and on every backend of the family (backend_device: the
numpy reference, the cpu device's kernels, the Triton kernels)."""
# ruff: noqa: B023  (the lambdas built in loops are called at once, inside check_op)
import numpy as np
import torch
from family_devices import backend_device_fixture
from helpers import check_op
from reduce_helpers import with_zeros

import tinyml
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()
R = {"kind": "reduction"}


def test_cumsum_cumprod(kernels):
    for name in ("cumsum", "cumprod"):
        for shape, dim in [((3, 4, 5), 0), ((3, 4, 5), -1), ((3, 4, 5), 1), ((6,), 0), ((), 0), ((), -1),
                           ((2, 1), 1)]:
            check_op([shape], lambda x: getattr(tinyml, name)(x, dim), lambda x: getattr(torch, name)(x, dim),
                     kind="reduction", noncontiguous=len(shape) >= 2, low=0.5, high=1.5)
        check_op([(3, 4)], lambda x: getattr(x, name)(dim=1, dtype=tinyml.float64),
                 lambda x: getattr(x, name)(dim=1, dtype=torch.float64), kind="reduction")


def test_cumprod_grad_with_zeros(kernels):
    # rows with no zero, one zero (first, middle, last) and two zeros
    x = np.array([[1.5, -2.0, 0.5, 3.0, 0.7], [0.0, 2.0, -1.0, 1.5, 2.0], [1.2, 2.0, 0.0, 3.0, -0.5],
                  [2.0, 0.5, 1.5, 1.1, 0.0], [1.3, 0.0, 2.0, 0.0, 1.7]])
    check_op([], lambda t: t.cumprod(1), inputs=[x], kind="reduction")
    check_op([], lambda t: t.cumprod(0), inputs=[x], kind="reduction")
    t = tinyml.tensor(x, dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda a: tinyml.cumprod(a, 1), [t])


# -- every backend of the family ------------------------------------------------------------------
def test_cumsum_cumprod_on_every_backend(backend_device):
    check_op([(3, 4, 5)], lambda x: x.cumsum(1), noncontiguous=True, device=backend_device, **R)
    check_op([(2, 1500)], lambda x: x.cumsum(-1), dtype="float64", device=backend_device, **R)
    check_op([(3, 4, 5)], lambda x: x.cumprod(2), device=backend_device, **R)
    check_op([()], lambda x: x.cumsum(0), device=backend_device, **R)
    check_op(None, lambda x: x.cumprod(1), inputs=[with_zeros()], device=backend_device, **R)
    check_op([(3, 5)], lambda x: (x * 3).long().cumsum(0), grad=False, device=backend_device, **R)
