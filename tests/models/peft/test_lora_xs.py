"""LoRA-XS: SVD-initialised frozen factors, a trainable r x r matrix."""
import numpy as np
import pytest
import torch
from peft_helpers import gpt, ids, llama, logits_of, randomise_lora
from tinyml.models.peft import LoraConfig, LoraXSConfig, LoraXSLinear, get_peft_model

import tinyml
import tinyml.nn as nn
from tinyml.testing import gradcheck


def _layer(r=3, dtype=tinyml.float32):
    base = nn.Linear(9, 7).to(dtype)
    return LoraXSLinear(base, "fc", "default", LoraXSConfig(r=r, lora_alpha=6), r, 6)


def test_factors_are_the_truncated_svd_and_r_starts_tiny():
    layer = _layer(r=3)
    W = layer.base_layer.weight.detach().numpy().astype(np.float64)
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    best = (U[:, :3] * S[:3]) @ Vt[:3]
    BA = layer.lora_B["default"].weight.detach().numpy() @ layer.lora_A["default"].weight.detach().numpy()
    np.testing.assert_allclose(BA, best, rtol=1e-5, atol=1e-6)
    R = layer.lora_R["default"].weight.detach().numpy()
    assert R.shape == (3, 3) and 0 < np.abs(R).max() < 1e-4  # N(0, 1e-5)
    trains = {n: p.requires_grad for n, p in layer.named_parameters() if "lora" in n}
    assert trains == {"lora_A.default.weight": False, "lora_B.default.weight": False,
                      "lora_R.default.weight": True}


def test_forward_and_gradient_of_r_match_torch():
    layer = _layer(r=3)
    randomise_lora(layer)
    x = tinyml.randn(4, 9, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    t = {k: torch.tensor(v.detach().numpy()) for k, v in layer.named_parameters()}
    R = t["lora_R.default.weight"].requires_grad_(True)
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    yt = xt @ t["base_layer.weight"].T + t["base_layer.bias"] + (
        xt @ t["lora_A.default.weight"].T @ R.T @ t["lora_B.default.weight"].T) * 2.0
    yt.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    ours = layer.lora_R["default"].weight.grad.numpy()
    np.testing.assert_allclose(ours, R.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert layer.lora_A["default"].weight.grad is None


def test_gradcheck_float64():
    layer = _layer(r=2, dtype=tinyml.float64)
    randomise_lora(layer)
    R = layer.lora_R["default"].weight
    assert R.dtype == tinyml.float64
    x = tinyml.randn(3, 9, dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda x, r: layer(x), [x, R])


@pytest.mark.parametrize("build", [gpt, llama])
def test_trainable_parameters_are_r_squared_per_module_and_a_tenth_of_lora(build, capsys):
    xs = get_peft_model(build(), LoraXSConfig(r=4, target_modules="all-linear"))
    n_modules = sum(isinstance(m, LoraXSLinear) for m in xs.modules())
    trainable, _ = xs.get_nb_trainable_parameters()
    assert trainable == 16 * n_modules
    xs.print_trainable_parameters()
    assert f"trainable params: {trainable:,d} ||" in capsys.readouterr().out
    lora_model = get_peft_model(build(), LoraConfig(r=4, target_modules="all-linear"))
    lora, _ = lora_model.get_nb_trainable_parameters()
    assert trainable <= lora / 10


def test_merge_unmerge_and_merge_and_unload():
    model = gpt()
    idx = ids(model)
    original = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    xs = get_peft_model(model, LoraXSConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"]))
    randomise_lora(xs)
    unmerged = logits_of(xs, idx)
    xs.merge()
    np.testing.assert_allclose(logits_of(xs, idx), unmerged, rtol=1e-6, atol=1e-6)
    xs.unmerge()
    state = {k.replace(".base_layer", ""): v for k, v in xs.base_model.state_dict().items()
             if ".lora_" not in k}
    for k, v in state.items():
        np.testing.assert_allclose(v.detach().numpy(), original[k], rtol=0, atol=1e-6)
    merged = xs.merge_and_unload()
    np.testing.assert_allclose(logits_of(merged, idx), unmerged, rtol=1e-6, atol=1e-6)


def test_training_moves_only_r():
    model = gpt(tied=False)
    xs = get_peft_model(model, LoraXSConfig(r=8, lora_alpha=64, target_modules=["c_attn", "c_fc", "lm_head"]))
    frozen = {n: p.detach().numpy().copy() for n, p in xs.named_parameters() if not p.requires_grad}
    idx = ids(xs, batch=4)
    targets = tinyml.cat([idx[:, 1:], idx[:, :1]], dim=1)
    opt = tinyml.optim.AdamW([p for p in xs.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(10):
        _, loss = xs(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05
    for n, p in xs.named_parameters():
        if n in frozen:
            np.testing.assert_array_equal(p.detach().numpy(), frozen[n])


def test_rank_larger_than_the_layer():
    with pytest.raises(ValueError, match=r"r=33 .*'transformer.h.0.attn.c_attn'.*\(96, 32\)"):
        get_peft_model(gpt(), LoraXSConfig(r=33, target_modules=["c_attn"]))
