"""Fused nn ops on the cuda device (Triton kernels) against PyTorch, forward and backward."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from helpers import check_op

import tinyml
import tinyml.nn.functional as F

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
CUDA = "cuda"


@pytest.mark.parametrize("n", [10, 33])
def test_layer_norm(n):
    check_op([(3, n), (n,), (n,)], lambda x, w, b: F.layer_norm(x, (n,), w, b),
             lambda x, w, b: TF.layer_norm(x, (n,), w, b), device=CUDA, kind="reduction")
    check_op([(2, 3, n)], lambda x: F.layer_norm(x, (n,)), lambda x: TF.layer_norm(x, (n,)), device=CUDA,
             kind="reduction")


def test_rms_norm():
    check_op([(3, 10), (10,)], lambda x, w: F.rms_norm(x, (10,), w, eps=1e-6),
             lambda x, w: TF.rms_norm(x, (10,), w, eps=1e-6), device=CUDA, kind="reduction")


@pytest.mark.parametrize("name", ["gelu", "silu", "softplus", "mish", "logsigmoid", "elu", "leaky_relu"])
def test_activations(name):
    check_op([(3, 10)], lambda x: getattr(F, name)(x), lambda x: getattr(TF, name)(x), device=CUDA,
             kind="reduction", noncontiguous=True)


def test_gelu_tanh_and_swiglu():
    check_op([(3, 10)], lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"),
             device=CUDA, kind="reduction")
    check_op([(3, 10), (3, 10)], lambda a, b: F.swiglu(a, b), lambda a, b: TF.silu(a) * b, device=CUDA,
             kind="reduction")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(smoothing):
    t = np.array([1, 4, -100, 0])
    check_op([(4, 10)], lambda x: F.cross_entropy(x, tinyml.tensor(t, device=CUDA), label_smoothing=smoothing),
             lambda x: TF.cross_entropy(x, torch.tensor(t), label_smoothing=smoothing), device=CUDA, kind="reduction")


def test_cross_entropy_bad_target_raises():
    with pytest.raises(IndexError, match="target 5 is out of bounds for 3 classes"):
        F.cross_entropy(tinyml.randn(2, 3, device=CUDA), tinyml.tensor([0, 5], device=CUDA))
