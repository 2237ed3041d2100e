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
