"""Movement ops (views and copies) on the cuda device (Triton kernels) against PyTorch, forward
and backward. Without a GPU they run in Triton's interpreter: small shapes."""
import pytest
import torch
from helpers import check_op

import tinyml

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"


def lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


def test_slices_and_diagonals():
    check_op([(3, 4, 5)], lambda x: x[1:, ::2, 3], device=CUDA)
    check_op([(3, 4, 5)], lambda x: x[None, 2, 1:3], device=CUDA, noncontiguous=True)
    check_op([(3, 4, 5)], lambda x: x.diagonal(1, 0, 2), device=CUDA)
    check_op([(4, 4)], lambda x: x.diagonal(-1), device=CUDA)


def test_repeat_and_repeat_interleave():
    check_op([(2, 3)], lambda x: x.repeat(2, 1, 3), device=CUDA)
    check_op([(2, 3)], lambda x: x.repeat_interleave(3, dim=1), device=CUDA, noncontiguous=True)
    check_op([(2, 3)], lambda x: x.repeat_interleave(2), device=CUDA)
    check_op([(3, 2)], lambda x: x.repeat_interleave(lib(x).tensor([1, 0, 3], device=x.device), dim=0), device=CUDA)


def test_cat_flip_roll():
    check_op([(2, 3), (2, 4)], lambda a, b: lib(a).cat([a, b], 1), device=CUDA)
    check_op([(2, 3, 4)], lambda x: x.flip((0, 2)), device=CUDA, noncontiguous=True)
    check_op([(2, 3, 4)], lambda x: x.roll((1, -2), (0, 2)), device=CUDA)
    check_op([(2, 3, 4)], lambda x: x.roll(5), device=CUDA)


def test_tril_triu_pad():
    check_op([(2, 3, 4)], lambda x: x.tril(), device=CUDA)
    check_op([(2, 3, 4)], lambda x: x.triu(1), device=CUDA, noncontiguous=True)
    check_op([(2, 1, 2, 3, 4)], lambda x: x.triu(-1), device=CUDA)
    check_op([(2, 3, 4)], lambda x: lib(x).nn.functional.pad(x, (1, 2, 0, 1), value=1.5), device=CUDA)
