"""pairwise_distance, cosine_embedding_loss, margin_ranking_loss and selu against torch, forward and
backward (float64), every reduction."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyml
import tinyml.nn.functional as F

RNG = np.random.default_rng(0)


def _both(*arrays):
    ours = [tinyml.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    return ours, theirs


def _check(fn_ours, fn_theirs, *arrays):
    ours, theirs = _both(*arrays)
    a, b = fn_ours(*ours), fn_theirs(*theirs)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    a.sum().backward()
    b.sum().backward()
    for x, y in zip(ours, theirs):
        if y.grad is not None:
            np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("p,keepdim", [(2.0, False), (1.0, True), (3.0, False)])
def test_pairwise_distance(p, keepdim):
    x, y = RNG.standard_normal((4, 5)), RNG.standard_normal((4, 5))
    _check(lambda a, b: F.pairwise_distance(a, b, p=p, keepdim=keepdim),
           lambda a, b: TF.pairwise_distance(a, b, p=p, keepdim=keepdim), x, y)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cosine_embedding_and_margin_ranking_losses(reduction):
    x, y = RNG.standard_normal((6, 4)), RNG.standard_normal((6, 4))
    target = np.array([1, -1, 1, -1, -1, 1])
    _check(lambda a, b, t: F.cosine_embedding_loss(a, b, t, margin=0.1, reduction=reduction),
           lambda a, b, t: TF.cosine_embedding_loss(a, b, t, margin=0.1, reduction=reduction),
           x, y, target)
    u, v, s = RNG.standard_normal(6), RNG.standard_normal(6), np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
    _check(lambda a, b, t: F.margin_ranking_loss(a, b, t, margin=0.2, reduction=reduction),
           lambda a, b, t: TF.margin_ranking_loss(a, b, t, margin=0.2, reduction=reduction),
           u, v, s)


def test_selu_and_module():
    x = RNG.standard_normal((3, 7))
    _check(lambda a: F.selu(a), lambda a: TF.selu(a), x)
    assert tinyml.nn.SELU()(tinyml.tensor(x)).shape == (3, 7)
