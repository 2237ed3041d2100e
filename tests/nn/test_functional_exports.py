"""tinyml.nn.functional exposes PyTorch's names (and re-exports one_hot, relu inplace)."""
import numpy as np
import torch
import torch.nn.functional as TF

import tinyml
import tinyml.nn.functional as F


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
