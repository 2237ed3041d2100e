"""Losses beyond cross_entropy, glu and AMSGrad on the cuda device (Triton kernels) against PyTorch,
forward and backward. Without a GPU they run in Triton's interpreter: small shapes."""
import numpy as np
import pytest
import torch
from helpers import check_op

import tinyml

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"


def F(x):
    return tinyml.nn.functional if isinstance(x, tinyml.Tensor) else torch.nn.functional


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_regression_losses(reduction):
    check_op([(3, 5), (3, 5)], lambda x, y: F(x).l1_loss(x, y, reduction=reduction), device=CUDA)
    check_op([(3, 5), (3, 5)], lambda x, y: F(x).smooth_l1_loss(x, y, reduction=reduction, beta=0.7),
             device=CUDA)
    check_op([(3, 5), (3, 5)], lambda x, y: F(x).huber_loss(x, y, reduction=reduction, delta=0.6),
             device=CUDA, noncontiguous=True)


def test_binary_cross_entropies():
    check_op([(3, 5), (3, 5)], lambda x, y: F(x).binary_cross_entropy_with_logits(x, y.sigmoid()),
             device=CUDA)
    check_op([(3, 5), (3, 5), (5,)], lambda x, y, w: F(x).binary_cross_entropy_with_logits(
        x, y.sigmoid(), pos_weight=w.exp().detach(), reduction="sum"), device=CUDA)
    check_op([(3, 5), (3, 5)], lambda x, y: F(x).binary_cross_entropy(x.sigmoid(), y.sigmoid()), device=CUDA)
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        tinyml.nn.functional.binary_cross_entropy(tinyml.tensor([0.5, 1.5], device=CUDA),
                                                  tinyml.tensor([0.0, 1.0], device=CUDA))


def test_kl_div():
    check_op([(3, 5), (3, 5)],
             lambda x, y: F(x).kl_div(x.log_softmax(-1), y.softmax(-1), reduction="batchmean"), device=CUDA)
    check_op([(3, 5), (3, 5)], lambda x, y: F(x).kl_div(x, y, reduction="sum", log_target=True), device=CUDA)


def test_nll_loss():
    t = np.array([0, 3, -100, 4], np.int64)

    def fn(x, w):
        tt = (tinyml if isinstance(x, tinyml.Tensor) else torch).tensor(t, device=x.device)
        weighted = F(x).nll_loss(x.log_softmax(1), tt, weight=w.exp().detach())
        return weighted + F(x).nll_loss(x, tt, reduction="sum")

    check_op([(4, 5), (5,)], fn, device=CUDA)
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        tinyml.nn.functional.nll_loss(tinyml.zeros(2, 5, device=CUDA), tinyml.tensor([1, 7], device=CUDA))


def test_glu():
    check_op([(3, 4, 6)], lambda x: F(x).glu(x, -1), device=CUDA)
    check_op([(4, 3)], lambda x: F(x).glu(x, 0), device=CUDA, noncontiguous=True)


def test_adam_amsgrad_matches_torch():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 3)).astype(np.float32)
    grads = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(3)]
    p = tinyml.nn.Parameter(tinyml.tensor(w0, device=CUDA))
    q = torch.nn.Parameter(torch.tensor(w0))
    opt = tinyml.optim.Adam([p], lr=0.1, amsgrad=True, weight_decay=0.01)
    ref = torch.optim.Adam([q], lr=0.1, amsgrad=True, weight_decay=0.01)
    for g in grads:
        p.grad = tinyml.tensor(g, device=CUDA)
        q.grad = torch.tensor(g)
        opt.step()
        ref.step()
    np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)
