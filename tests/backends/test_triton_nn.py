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
    check_op([(4, 10)],
             lambda x: F.cross_entropy(x, tinyml.tensor(t, device=CUDA), label_smoothing=smoothing),
             lambda x: TF.cross_entropy(x, torch.tensor(t), label_smoothing=smoothing), device=CUDA,
             kind="reduction")


def test_cross_entropy_bad_target_raises():
    with pytest.raises(IndexError, match="target 5 is out of bounds for 3 classes"):
        F.cross_entropy(tinyml.randn(2, 3, device=CUDA), tinyml.tensor([0, 5], device=CUDA))


def _sdpa(**kw):
    def tm(q, k, v):
        extra = dict(kw)
        if "attn_mask" in extra:
            extra["attn_mask"] = tinyml.tensor(extra["attn_mask"], device=q.device)
        return F.scaled_dot_product_attention(q, k, v, **extra)

    def th(q, k, v):
        extra = dict(kw)
        if "attn_mask" in extra:
            extra["attn_mask"] = torch.tensor(extra["attn_mask"])
        return TF.scaled_dot_product_attention(q, k, v, **extra)

    return tm, th


@pytest.mark.parametrize("shapes,kw", [
    ([(1, 2, 5, 8), (1, 2, 7, 8), (1, 2, 7, 8)], {}),
    ([(1, 2, 20, 8), (1, 2, 20, 8), (1, 2, 20, 8)], {"is_causal": True}),
    ([(2, 2, 5, 12), (2, 2, 7, 12), (2, 2, 7, 6)],
     {"attn_mask": np.random.default_rng(0).standard_normal((1, 1, 5, 7)).astype(np.float32), "scale": 0.3}),
])
def test_flash_attention(shapes, kw):
    tm, th = _sdpa(**kw)
    check_op(shapes, tm, th, device=CUDA, kind="reduction")


def test_flash_attention_bool_mask_with_a_fully_masked_row_gives_zeros():
    mask = np.ones((4, 6), dtype=bool)
    mask[1] = False
    q, k, v = (tinyml.randn(1, 1, n, 8, device=CUDA, requires_grad=True) for n in (4, 6, 6))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=tinyml.tensor(mask, device=CUDA))
    host = out.detach().cpu().numpy()
    assert np.all(host[0, 0, 1] == 0) and np.isfinite(host).all()
    out.sum().backward()
    assert np.isfinite(q.grad.cpu().numpy()).all() and np.all(q.grad.cpu().numpy()[0, 0, 1] == 0)


def test_flash_attention_bf16():
    check_op([(1, 2, 9, 16)] * 3, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
             lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True), device=CUDA,
             dtype="bfloat16", kind="reduction")


def test_attention_saves_no_t_by_t_matrix():
    q, k, v = (tinyml.randn(1, 2, 32, 8, device=CUDA, requires_grad=True) for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    saved = [tuple(e[0].shape) for e in out.grad_fn._saved if e is not None]
    assert saved and not any(s[-2:] == (32, 32) for s in saved)  # q, k, v, out, lse: nothing Tq x Tk
