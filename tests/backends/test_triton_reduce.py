"""Reductions, arg-reductions and scans on the cuda device (Triton kernels) against PyTorch,
forward and backward. Without a GPU they run in Triton's interpreter: small shapes."""
import numpy as np
import pytest
from helpers import check_op

import tinyml

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"
R = {"device": CUDA, "kind": "reduction"}


def _with_zeros():
    a = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    a[0, 2] = a[1, 1] = a[1, 4] = a[2, 5] = 0  # one zero, two zeros, a zero at the end
    return a


def test_prod_var_std_logsumexp():
    check_op([(3, 4, 5)], lambda x: x.prod(1), **R)
    check_op([()], lambda x: x.prod(), **R)
    check_op(None, lambda x: x.prod(1), inputs=[_with_zeros()], **R)
    check_op(None, lambda x: x.prod(), inputs=[_with_zeros()], **R)
    check_op([(3, 4, 5)], lambda x: x.var((0, 2)), noncontiguous=True, **R)
    check_op([(3, 4, 5)], lambda x: x.std(-1, keepdim=True, correction=0), **R)
    check_op([(2, 3000)], lambda x: x.logsumexp(1), **R)
    check_op([(3, 4)], lambda x: x.logsumexp((0, 1)), dtype="float64", **R)


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), float("-inf")])
def test_norm(p):
    check_op([(3, 5)], lambda x: x.norm(p=p, dim=1), **R)


def test_all_any():
    check_op([(3, 4, 5)], lambda x: (x > 0).all(1), device=CUDA, grad=False)
    check_op([(3, 4, 5)], lambda x: (x > 1.5).any((0, 2), keepdim=True), device=CUDA, grad=False)


def test_amax_amin_ties_and_nan():
    check_op([(3, 4, 5)], lambda x: x.amax((0, 2)), **R)
    check_op([(3, 40, 5)], lambda x: x.amin(1), noncontiguous=True, **R)
    ties = np.array([[1, 2, 2, 0], [3, 3, 1, 1]], np.float32)
    check_op(None, lambda x: x.amax(1), inputs=[ties], **R)
    check_op(None, lambda x: x.max(), inputs=[ties], **R)
    nan = _with_zeros()
    nan[0, 3] = np.nan
    check_op(None, lambda x: x.amax(1), inputs=[nan], grad=False, **R)
    check_op(None, lambda x: x.max(1), inputs=[nan], grad=False, **R)
    check_op(None, lambda x: x.argmin(1), inputs=[nan], grad=False, **R)


def test_max_min_dim_and_arg():
    check_op([(3, 4, 5)], lambda x: x.max(1), **R)
    check_op([(3, 40, 5)], lambda x: x.min(0, keepdim=True), **R)
    check_op([(3, 1500)], lambda x: x.argmax(1), grad=False, **R)  # rows longer than one block
    check_op([(3, 40, 5)], lambda x: x.argmin(), grad=False, **R)
    check_op([(4, 3)], lambda x: x.long().argmax(0), low=-5, high=5, grad=False, **R)
    check_op([()], lambda x: x.max(0), **R)


def test_cumsum_cumprod():
    check_op([(3, 4, 5)], lambda x: x.cumsum(1), noncontiguous=True, **R)
    check_op([(2, 1500)], lambda x: x.cumsum(-1), dtype="float64", **R)
    check_op([(3, 4, 5)], lambda x: x.cumprod(2), **R)
    check_op([()], lambda x: x.cumsum(0), **R)
    check_op(None, lambda x: x.cumprod(1), inputs=[_with_zeros()], **R)
    check_op([(3, 5)], lambda x: (x * 3).long().cumsum(0), grad=False, **R)


def test_bf16_reductions_accumulate_in_float32():
    check_op([(4, 9)], lambda x: x.var(1), dtype="bfloat16", **R)
    check_op([(4, 9)], lambda x: x.cumsum(1), dtype="bfloat16", **R)
    check_op([(3, 4)], lambda x: x.amax(1) + x.prod(1), dtype="bfloat16", **R)  # padding lanes must not leak
    check_op([(3, 4)], lambda x: x.cumprod(1).logsumexp(0), dtype="float16", **R)


def test_few_long_rows_split_into_chunks():
    """Rows past 8192 elements reduce in chunks (partials, then a combining launch)."""
    check_op([(2, 9000)], lambda x: x.norm(dim=1) + x.norm(p=3, dim=1) + x.amax(1) - x.amin(1), **R)
    check_op([(9000,)], lambda x: x.norm(p=float("inf")), grad=False, **R)
    check_op([(2, 9000)], lambda x: (x > -3.5).all(1) | (x > 3.5).any(1), device=CUDA, grad=False)
    check_op([(2, 9000)], lambda x: (x * 0.0005 + 1).prod(1), grad=False, **R)
    nan = np.random.default_rng(0).standard_normal(9000).astype(np.float32)
    nan[5000] = np.nan
    check_op(None, lambda x: x.amax() + x.norm(), inputs=[nan], grad=False, **R)

