"""F.unfold / F.fold and nn.Unfold / nn.Fold (tinyml/ops/fold.py) against torch, forward and backward."""
import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

GEOMETRIES = [((3, 3), 1, 0, 1), ((3, 2), (1, 2), 1, (2, 1)), (2, 1, 0, 2), ((1, 1), 1, 0, 1), (3, 2, 2, 1)]


@pytest.mark.parametrize("k, d, p, s", GEOMETRIES)
@pytest.mark.parametrize("batched", [True, False])
def test_unfold_fold_match_torch(k, d, p, s, batched):
    rng = np.random.default_rng(0)
    shape = (2, 3, 7, 6) if batched else (3, 7, 6)
    x = rng.standard_normal(shape).astype(np.float32)
    a, b = tinyml.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ua, ub = F.unfold(a, k, d, p, s), torch.nn.functional.unfold(b, k, d, p, s)
    np.testing.assert_allclose(ua.detach().numpy(), ub.detach().numpy(), atol=0)
    g = rng.standard_normal(tuple(ub.shape)).astype(np.float32)
    ua.backward(tinyml.tensor(g))
    ub.backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-5)
    cols = rng.standard_normal(tuple(ub.shape)).astype(np.float32)
    ca, cb = tinyml.tensor(cols, requires_grad=True), torch.tensor(cols, requires_grad=True)
    fa, fb = F.fold(ca, (7, 6), k, d, p, s), torch.nn.functional.fold(cb, (7, 6), k, d, p, s)
    np.testing.assert_allclose(fa.detach().numpy(), fb.detach().numpy(), atol=1e-5)
    g2 = rng.standard_normal(tuple(fb.shape)).astype(np.float32)
    fa.backward(tinyml.tensor(g2))
    fb.backward(torch.tensor(g2))
    np.testing.assert_allclose(ca.grad.numpy(), cb.grad.numpy(), atol=1e-6)


def test_modules_and_gradcheck():
    x = tinyml.randn(1, 2, 5, 5, dtype=tinyml.float64, requires_grad=True)
    m = tinyml.nn.Unfold(3, padding=1)
    assert tuple(m(x).shape) == (1, 18, 25) and "kernel_size=3" in repr(m)
    assert tuple(tinyml.nn.Fold((5, 5), 3, padding=1)(m(x)).shape) == (1, 2, 5, 5)
    assert gradcheck(lambda x: F.unfold(x, 2, stride=2), (x,))
    assert gradcheck(lambda c: F.fold(c, (5, 5), 3, padding=1), (m(x).detach().requires_grad_(True),))


def test_errors_name_the_values():
    with pytest.raises(ValueError, match=r"does not fit the padded size \(4, 4\)"):
        F.unfold(tinyml.randn(1, 1, 4, 4), 5)
    with pytest.raises(ValueError, match=r"shape \(1, 1, 2, 2, 2\)"):
        F.unfold(tinyml.randn(1, 1, 2, 2, 2), 2)
    with pytest.raises(ValueError, match="divisible by 9"):
        F.fold(tinyml.randn(1, 10, 9), (5, 5), 3, padding=1)
