"""nn ops beside the fused families: softmax/log_softmax through F, linear, dropout, embedding,
normalize, one_hot, and the names tinyml.nn.functional exposes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

RED = {"kind": "reduction"}


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_through_functional(kernels, name):
    for dim in (0, -1, 1):
        check_op([(3, 4, 5)], lambda x, d=dim: getattr(F, name)(x, d),
                 lambda x, d=dim: getattr(TF, name)(x, d),
                 **RED)
    check_op([(4, 6)], lambda x: getattr(F, name)(x, -1), lambda x: getattr(TF, name)(x, -1),
             noncontiguous=True,
             **RED)


@pytest.mark.parametrize("x_shape", [(3, 4), (2, 5, 4), (4,)])
def test_linear(kernels, x_shape):
    check_op([x_shape, (6, 4), (6,)], lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
             **RED)
    check_op([x_shape, (6, 4)], lambda x, w: F.linear(x, w), lambda x, w: TF.linear(x, w), **RED)


def test_linear_noncontiguous_and_gradcheck(kernels):
    check_op([(5, 4), (3, 4), (3,)], lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
             noncontiguous=True, **RED)
    rng = np.random.default_rng(0)
    x, w, b = (tinyml.tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3), (4, 3), (4,)])
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])


def test_linear_first_layer_gradients(kernels):
    # the usual first layer: the input is data (no grad), only the weight and bias learn
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    ours_w, ours_b = tinyml.tensor(w, requires_grad=True), tinyml.tensor(b, requires_grad=True)
    theirs_w, theirs_b = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    F.linear(tinyml.tensor(x), ours_w, ours_b).sum().backward()
    TF.linear(torch.tensor(x), theirs_w, theirs_b).sum().backward()
    np.testing.assert_allclose(ours_w.grad.numpy(), theirs_w.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours_b.grad.numpy(), theirs_b.grad.numpy(), rtol=1e-10)


def test_linear_shape_error_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 5x4\)"):
        F.linear(tinyml.randn(2, 3), tinyml.randn(4, 5))


def test_dropout_scales_kept_values_and_reproduces_with_seed():
    x = tinyml.ones(200, 50, requires_grad=True)
    tinyml.manual_seed(3)
    y = F.dropout(x, 0.3)
    vals = np.unique(y.detach().numpy())
    np.testing.assert_allclose(vals, [0.0, 1 / 0.7], rtol=1e-6)
    kept = (y.detach().numpy() != 0).mean()
    assert abs(kept - 0.7) < 0.02
    tinyml.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.3).detach().numpy(), y.detach().numpy())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())  # grad = mask / (1 - p)


def test_dropout_edge_cases():
    x = tinyml.randn(4, 5)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.dropout(x, 1.5)
    z = tinyml.ones(10, 10)
    out = F.dropout(z, 0.5, inplace=True)
    assert out is z and set(np.unique(z.numpy())) <= {0.0, 2.0}


def test_embedding(kernels):
    ids = np.array([[0, 2, 2], [4, 1, 0]])
    check_op([(5, 3)], lambda w: F.embedding(tinyml.tensor(ids), w),
             lambda w: TF.embedding(torch.tensor(ids), w))
    for pad in (2, -1):
        check_op([(5, 3)], lambda w, p=pad: F.embedding(tinyml.tensor(ids), w, padding_idx=p),
                 lambda w, p=pad: TF.embedding(torch.tensor(ids), w, padding_idx=p))
    with pytest.raises(NotImplementedError, match="max_norm"):
        F.embedding(tinyml.tensor(ids), tinyml.randn(5, 3), max_norm=1.0)


@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, -1), (3.0, 0)])
def test_normalize(kernels, p, dim):
    check_op([(3, 4)], lambda x: F.normalize(x, p, dim), lambda x: TF.normalize(x, p, dim), **RED)


def test_normalize_zero_rows_stay_finite(kernels):
    x = np.zeros((2, 3))
    x[1] = [3.0, 4.0, 0.5]
    check_op(None, lambda t: F.normalize(t), lambda t: TF.normalize(t), inputs=[x], **RED)


def test_one_hot_is_reexported():
    t = tinyml.tensor([0, 2, 1])
    np.testing.assert_array_equal(F.one_hot(t, 4).numpy(), TF.one_hot(torch.tensor([0, 2, 1]), 4).numpy())


def test_functional_exposes_pytorch_names():
    names = ["relu", "gelu", "silu", "tanh", "sigmoid", "softmax", "log_softmax", "linear", "embedding",
             "dropout", "layer_norm", "rms_norm", "group_norm", "cross_entropy", "nll_loss", "mse_loss",
             "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy_with_logits",
             "binary_cross_entropy", "kl_div", "cosine_similarity", "scaled_dot_product_attention",
             "normalize", "softplus", "leaky_relu", "elu", "relu6", "hardtanh", "mish", "glu", "logsigmoid",
             "one_hot", "pad"]
    missing = [n for n in names if not callable(getattr(F, n, None))]
    assert not missing, missing


def test_functional_relu_inplace():
    x = tinyml.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), [0.0, 2.0])
