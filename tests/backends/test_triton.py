"""Ops on the cuda device, through the Triton kernels, against PyTorch forward and backward.

Without a GPU these run in Triton's interpreter on host memory (small shapes: each program costs
milliseconds there); with one, on the GPU.
"""
import numpy as np
import pytest
from helpers import check_op

import tinyml

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"


@pytest.mark.parametrize("shapes", [[(3, 5), (5,)], [(2, 1, 4), (3, 1)], [(), (4,)]])
def test_binary_broadcast(shapes):
    check_op(shapes, lambda a, b: (a + b) * (a - b) / (b * b + 1.0), device=CUDA)
    check_op(shapes, lambda a, b: a ** 2 + 2 ** b - b, device=CUDA, low=0.5, high=2.0)


def test_unary_chain_noncontiguous():
    check_op([(4, 6)], lambda x: (x.tanh() + x.sigmoid() * x.exp() - x.relu()).T, device=CUDA, noncontiguous=True)
    check_op([(5,)], lambda x: x.log() * 2, device=CUDA, low=0.1, high=3.0)


def test_comparisons_and_where():
    out = check_op([(3, 4), (4,)], lambda a, b: tinyml.where(a > b, a, b * 2) if isinstance(a, tinyml.Tensor)
                   else __import__("torch").where(a > b, a, b * 2), device=CUDA)
    assert out.device == CUDA


def test_sum_over_dims():
    check_op([(3, 4, 5)], lambda x: x.sum((0, 2)), device=CUDA, kind="reduction", noncontiguous=True)
    check_op([(3, 4)], lambda x: x.sum(), device=CUDA, kind="reduction")
    check_op([(3, 4)], lambda x: x.sum(-1, keepdim=True), device=CUDA, kind="reduction")


@pytest.mark.parametrize("shapes", [[(5, 7), (7, 3)], [(2, 1, 5, 7), (3, 7, 4)], [(7,), (7, 3)], [(33, 40), (40, 35)]])
def test_matmul(shapes):
    check_op(shapes, lambda a, b: a @ b, device=CUDA, kind="reduction", rtol=2e-3, atol=2e-3)


def test_matmul_bf16_accumulates_in_float32():
    a = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    x = tinyml.tensor(a, dtype=tinyml.bfloat16, device=CUDA)
    out = (x @ x.T).float().cpu().numpy()
    ref = a.astype(np.float64) @ a.T.astype(np.float64)
    assert np.max(np.abs(out - ref)) < 0.1 * np.max(np.abs(ref))
