"""The single-node LoRA path (models/peft/lora_function.py): values and gradients against PyTorch,
what it keeps for backward, and when LoraLinear falls back to the unfused ops."""
import numpy as np
import pytest
import torch
from peft_helpers import gpt, ids, llama, randomise_lora
from tinyml.models.peft import LoraConfig, LoraLinear, get_peft_model, lora_function
from tinyml.models.peft.lora_function import LoraLinearFunction, tag_norm_outputs, untag_norm_outputs

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F
from tinyml.testing import gradcheck


def frozen_layer(n_in=12, n_out=10, r=3, dtype=tinyml.float32, dropout=0.0):
    tinyml.manual_seed(0)
    base = nn.Linear(n_in, n_out).to(dtype)
    base.requires_grad_(False)
    config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=dropout)
    layer = LoraLinear(base, "fc", "default", config, r, 2 * r)
    randomise_lora(layer)
    for p in layer.adapter_parameters("default"):
        p.requires_grad_(True)
    return layer


def torch_reference(layer, x: np.ndarray, gy: np.ndarray, activation: bool):
    W, b = (torch.tensor(t.detach().numpy()) for t in (layer.base_layer.weight, layer.base_layer.bias))
    A = torch.tensor(layer.lora_A["default"].weight.detach().numpy(), requires_grad=True)
    B = torch.tensor(layer.lora_B["default"].weight.detach().numpy(), requires_grad=True)
    h = torch.tensor(x, requires_grad=True)
    xt = torch.nn.functional.gelu(h, approximate="tanh") if activation else h
    y = xt @ W.T + b + (xt @ A.T @ B.T) * layer.scaling["default"]
    y.backward(torch.tensor(gy))
    return y.detach().numpy(), h.grad.numpy(), A.grad.numpy(), B.grad.numpy()


@pytest.mark.parametrize("activation", [False, True], ids=["plain-input", "gelu-output"])
def test_fused_path_matches_torch_and_keeps_x_at_most_once(activation):
    layer = frozen_layer()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 12)).astype(np.float32)
    gy = rng.standard_normal((2, 3, 10)).astype(np.float32)
    h = tinyml.tensor(x, requires_grad=True)
    inp = F.gelu(h, approximate="tanh") if activation else h
    y = layer(inp)
    node = y.grad_fn
    assert node.fn is LoraLinearFunction
    kept = [e[0] for e in node._saved if e is not None]
    # x (unless rebuilt from the gelu's own input), u (rows, r), W for dx, A and B: nothing of b
    assert all(k is not layer.base_layer.bias for k in kept)
    assert (node.source is not None) == activation
    assert sum(1 for k in kept if k.numel() == 2 * 3 * 12) == (0 if activation else 1)
    y.backward(tinyml.tensor(gy))
    want_y, want_dx, want_dA, want_dB = torch_reference(layer, x, gy, activation)
    np.testing.assert_allclose(y.detach().numpy(), want_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.grad.numpy(), want_dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.lora_A["default"].weight.grad.numpy(), want_dA, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.lora_B["default"].weight.grad.numpy(), want_dB, rtol=1e-4, atol=1e-5)
    assert layer.base_layer.weight.grad is None


@pytest.mark.parametrize("activation,chunk", [(False, None), (True, None), (True, 12)],
                         ids=["plain-input", "gelu-output", "gelu-output-by-rows"])
def test_fused_path_gradcheck_float64(activation, chunk, monkeypatch):
    if chunk:  # the recomputed activation made two rows at a time (a remainder chunk included)
        monkeypatch.setattr(lora_function, "_CHUNK_ELEMENTS", chunk)
    layer = frozen_layer(5, 4, 2, dtype=tinyml.float64)
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    h = tinyml.randn(3, 5, dtype=tinyml.float64, requires_grad=True)

    def fn(h, a, b):
        return layer(F.gelu(h) if activation else h)

    assert fn(h, A, B).grad_fn.fn is LoraLinearFunction
    assert gradcheck(fn, [h, A, B])


def test_a_frozen_lora_a_needs_no_input_and_a_data_input_gets_no_gradient():
    layer = frozen_layer()
    layer.lora_A["default"].weight.requires_grad_(False)
    y = layer(tinyml.randn(4, 12))  # data: no gradient for x
    assert y.grad_fn.fn is LoraLinearFunction
    assert y.grad_fn._saved[0] is None  # neither x nor a rebuild source
    y.sum().backward()
    assert layer.lora_B["default"].weight.grad is not None and layer.lora_A["default"].weight.grad is None


def test_unfused_when_dropout_trains_the_base_trains_or_two_adapters_are_active():
    x = tinyml.randn(4, 12, requires_grad=True)
    layer = frozen_layer(dropout=0.5).train()
    assert layer(x).grad_fn.fn is not LoraLinearFunction
    assert layer.eval()(x).grad_fn.fn is LoraLinearFunction  # dropout is the identity in eval
    layer = frozen_layer()
    layer.base_layer.weight.requires_grad_(True)
    assert layer(x).grad_fn.fn is not LoraLinearFunction
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        frozen_layer()(tinyml.randn(4, 11))  # a wrong width still gets F.linear's error


@pytest.mark.parametrize("kind", ["layer_norm", "rms_norm", "layer_norm_untagged"])
def test_a_norm_output_is_recomputed_not_kept(kind):
    layer = frozen_layer()
    norm = nn.RMSNorm(12) if kind == "rms_norm" else nn.LayerNorm(12)
    rng = np.random.default_rng(3)
    with tinyml.no_grad():
        norm.weight.copy_(tinyml.tensor(rng.standard_normal(12), dtype=tinyml.float32))
        if kind != "rms_norm":
            norm.bias.copy_(tinyml.tensor(rng.standard_normal(12), dtype=tinyml.float32))
    norm.requires_grad_(False)
    net = nn.Sequential(norm, layer)
    if kind != "layer_norm_untagged":
        tag_norm_outputs(net)
    x = rng.standard_normal((2, 3, 12)).astype(np.float32)
    gy = rng.standard_normal((2, 3, 10)).astype(np.float32)
    h = tinyml.tensor(x, requires_grad=True)
    y = net(h)
    assert (y.grad_fn.source is None) == (kind == "layer_norm_untagged")
    y.backward(tinyml.tensor(gy))

    ht = torch.tensor(x, requires_grad=True)
    w = torch.tensor(norm.weight.numpy())
    nt = (torch.nn.functional.rms_norm(ht, (12,), w, norm.eps) if kind == "rms_norm" else
          torch.nn.functional.layer_norm(ht, (12,), w, torch.tensor(norm.bias.numpy()), norm.eps))
    A = torch.tensor(layer.lora_A["default"].weight.detach().numpy(), requires_grad=True)
    B = torch.tensor(layer.lora_B["default"].weight.detach().numpy(), requires_grad=True)
    W, b = (torch.tensor(t.numpy()) for t in (layer.base_layer.weight, layer.base_layer.bias))
    yt = nt @ W.T + b + (nt @ A.T @ B.T) * layer.scaling["default"]
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.grad.numpy(), ht.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.lora_A["default"].weight.grad.numpy(), A.grad.numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(layer.lora_B["default"].weight.grad.numpy(), B.grad.numpy(), rtol=1e-4,
                               atol=1e-5)
    untag_norm_outputs(net)


def test_a_layer_norm_bias_changed_before_backward_is_an_error_and_unload_removes_the_hooks():
    norm = nn.LayerNorm(12)
    norm.requires_grad_(False)
    net = nn.Sequential(norm, frozen_layer())
    tag_norm_outputs(net)
    y = net(tinyml.randn(4, 12, requires_grad=True))
    with tinyml.no_grad():
        norm.bias.add_(1.0)
    with pytest.raises(RuntimeError, match=r"bias \(12,\) of a LayerNorm before a LoRA layer was modified"):
        y.sum().backward()
    model = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"]))
    assert len(lora_function._norm_hooks[model.base_model]) == 5  # ln_1, ln_2 of 2 blocks and ln_f
    base = model.unload()
    assert base not in lora_function._norm_hooks


@pytest.mark.parametrize("build", [gpt, llama])
def test_lora_gradients_equal_the_unfused_graph_and_keep_less(build):
    def run(fused: bool):
        model = get_peft_model(build(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")).train()
        randomise_lora(model)
        if not fused:  # a second active adapter name would change the model; a trainable base unfuses
            for m in model.modules():
                if isinstance(m, LoraLinear):
                    m.base_layer.weight.requires_grad_(True)
        idx = ids(model)
        _, loss = model(idx, idx)
        kept = tinyml.memory.saved_bytes(loss)
        loss.backward()
        grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters() if "lora_" in n}
        return loss.item(), grads, kept

    loss_f, grads_f, kept_f = run(True)
    loss_u, grads_u, kept_u = run(False)
    assert abs(loss_f - loss_u) < 1e-5
    for name in grads_u:
        np.testing.assert_allclose(grads_f[name], grads_u[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert kept_f < kept_u


def test_differentiating_the_fused_gradient_again_is_a_clear_error():
    x = tinyml.randn(4, 12, requires_grad=True)
    (g,) = tinyml.autograd.grad(frozen_layer()(x).sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through lora_linear is not supported"):
        g.sum().backward()
