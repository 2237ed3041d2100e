import numpy as np
import pytest
from helpers import check_op

import tinyml


def test_broadcast_mul_add_matches_torch(kernels):
    check_op([(3, 1, 4), (5, 1)], lambda x, y: (x * y + 2.0).tanh())


def test_softmax_matches_torch(kernels):
    check_op([(4, 7)], lambda x: x.softmax(-1), kind="reduction")
    check_op([(4, 7)], lambda x: x.log_softmax(0), kind="reduction")


def test_deep_graph_backward_is_iterative():
    v = tinyml.ones(3, requires_grad=True)
    h = v
    for _ in range(10000):
        h = h * 1.0001
    h.sum().backward()
    np.testing.assert_allclose(v.grad.numpy(), 1.0001 ** 10000, rtol=1e-3)


def test_second_backward_through_freed_graph_raises():
    x = tinyml.randn(3, requires_grad=True)
    y = x.exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_gradcheck_runs_on_the_cuda_device():
    """gradcheck perturbs a host copy of a cuda input and writes it back for every probe."""
    from tinyml.testing import gradcheck

    cuda = pytest.importorskip("tinyml.backends.cuda")
    try:
        x = tinyml.randn(2, 3, dtype=tinyml.float64).to("cuda").requires_grad_(True)
    except cuda.CudaError as e:
        pytest.skip(f"no cuda device here: {e}")
    assert gradcheck(lambda x: (x.exp() * x).sum(1), (x,))
    with pytest.raises(AssertionError, match="gradcheck failed"):
        gradcheck(lambda x: (x * x.detach()).sum(1), (x,))
