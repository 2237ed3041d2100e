"""conv2d (implicit GEMM), pooling and upsampling on the cuda device (Triton kernels) against
PyTorch, forward and backward. Without a GPU they run in Triton's interpreter: small shapes."""
import pytest
import torch
from helpers import check_op

import tinyml

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"
R = {"device": CUDA, "kind": "reduction"}


def F(x):
    return tinyml.nn.functional if isinstance(x, tinyml.Tensor) else torch.nn.functional


def test_conv2d():
    check_op([(2, 3, 7, 6), (4, 3, 3, 3), (4,)], lambda x, w, b: F(x).conv2d(x, w, b, padding=1), **R)
    check_op([(2, 4, 7, 6), (6, 2, 3, 2)], lambda x, w: F(x).conv2d(x, w, stride=(2, 1), padding=(1, 0),
                                                                     dilation=(1, 2), groups=2), **R)
    check_op([(2, 3, 9), (4, 3, 3)], lambda x, w: F(x).conv1d(x, w, padding=2), noncontiguous=True, **R)


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_conv2d_dtypes(dtype):
    check_op([(1, 3, 6, 6), (2, 3, 2, 2)], lambda x, w: F(x).conv2d(x, w, padding="same"), dtype=dtype, **R)


def test_max_pool2d():
    check_op([(2, 3, 7, 6)], lambda x: F(x).max_pool2d(x, 3, 2, 1), **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).max_pool2d(x, (2, 3), (1, 2), 0, dilation=(2, 1), ceil_mode=True), **R)


def test_avg_pool2d():
    check_op([(2, 3, 7, 6)], lambda x: F(x).avg_pool2d(x, 3, 2, 1), **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).avg_pool2d(x, 2, divisor_override=3), **R)
    check_op([(2, 3, 7, 6)], lambda x: F(x).adaptive_avg_pool2d(x, (3, 4)), **R)


def test_upsample():
    check_op([(2, 3, 4, 5)], lambda x: F(x).interpolate(x, scale_factor=2, mode="nearest"), **R)
    check_op([(2, 3, 4, 5)], lambda x: F(x).interpolate(x, size=(7, 9), mode="bilinear", align_corners=False), **R)
    check_op([(2, 3, 4, 5)], lambda x: F(x).interpolate(x, size=(7, 3), mode="bilinear", align_corners=True),
             dtype="float64", **R)
