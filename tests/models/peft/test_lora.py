"""LoRA / rsLoRA: the layer against PyTorch, merging, several adapters, targets and errors."""
import math

import numpy as np
import pytest
import torch
from peft_helpers import bert, gpt, ids, llama, logits_of, randomise_lora
from tinyml.models.peft import LoraConfig, LoraLinear, PeftModel, get_peft_model

import tinyml
import tinyml.nn as nn
from tinyml.testing import gradcheck


def test_lora_linear_forward_and_backward_match_torch():
    base = nn.Linear(12, 10)
    layer = LoraLinear(base, "fc", "default", LoraConfig(r=3, lora_alpha=6), 3, 6)
    randomise_lora(layer)
    for p in layer.parameters():
        p.requires_grad_(True)
    x = tinyml.randn(4, 12, requires_grad=True)
    y = layer(x)
    gy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    y.backward(tinyml.tensor(gy))

    W, b = (torch.tensor(base.weight.detach().numpy(), requires_grad=True),
            torch.tensor(base.bias.detach().numpy(), requires_grad=True))
    A = torch.tensor(layer.lora_A["default"].weight.detach().numpy(), requires_grad=True)
    B = torch.tensor(layer.lora_B["default"].weight.detach().numpy(), requires_grad=True)
    xt = torch.tensor(x.detach().numpy(), requires_grad=True)
    yt = xt @ W.T + b + (xt @ A.T @ B.T) * 2.0
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    for ours, theirs in [(x, xt), (base.weight, W), (layer.lora_A["default"].weight, A),
                         (layer.lora_B["default"].weight, B)]:
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_lora_gradcheck_float64():
    base = nn.Linear(5, 4).double()
    layer = LoraLinear(base, "fc", "default", LoraConfig(r=2, lora_alpha=3, use_rslora=True), 2, 3)
    randomise_lora(layer)
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert A.dtype == tinyml.float64
    A.requires_grad_(True)
    B.requires_grad_(True)
    x = tinyml.randn(3, 5, dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda x, a, b: layer(x), [x, A, B])


def test_init_is_kaiming_uniform_a_and_zero_b_so_the_model_starts_unchanged():
    model = gpt()
    idx = ids(model)
    before = logits_of(model, idx)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["c_attn"]))
    layer = peft.base_model.transformer.h[0].attn.c_attn
    A = layer.lora_A["default"].weight.detach().numpy()
    bound = 1 / math.sqrt(layer.in_features)  # kaiming_uniform_(a=sqrt(5)): sqrt(6 / ((1 + 5) fan_in))
    assert np.abs(A).max() <= bound and np.abs(A).max() > 0.8 * bound
    assert not layer.lora_B["default"].weight.detach().numpy().any()
    np.testing.assert_array_equal(logits_of(peft, idx), before)


@pytest.mark.parametrize("use_rslora", [False, True])
def test_scaling_lora_and_rslora(use_rslora):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_fc"], use_rslora=use_rslora)
    peft = get_peft_model(gpt(), config)
    layer = peft.base_model.transformer.h[1].mlp.c_fc
    assert layer.scaling["default"] == (8 / 2 if use_rslora else 8 / 4)


@pytest.mark.parametrize("build,targets", [(gpt, ["c_attn", "c_proj", "c_fc"]), (llama, "all-linear"),
                                           (bert, ["query", "value", "dense"])])
def test_merged_and_unmerged_outputs_agree_and_unmerge_restores_weights(build, targets):
    model = build()
    idx = ids(model)
    original = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    randomise_lora(peft)
    unmerged = logits_of(peft, idx)
    assert np.abs(unmerged - logits_of(build(), idx)).max() > 1e-3  # the adapter does change the output
    peft.merge()
    np.testing.assert_allclose(logits_of(peft, idx), unmerged, rtol=1e-6, atol=1e-6)
    peft.unmerge()
    for k, v in peft.base_model.state_dict().items():
        if ".lora_" not in k:
            expected = original[k.replace(".base_layer", "")]
            np.testing.assert_allclose(v.detach().numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(logits_of(peft, idx), unmerged, rtol=1e-6, atol=1e-6)


def test_merge_and_unload_gives_the_plain_model_with_the_merged_outputs():
    peft = get_peft_model(gpt(), LoraConfig(r=4, target_modules="all-linear"))
    randomise_lora(peft)
    idx = ids(peft)
    expected = logits_of(peft, idx)
    merged = peft.merge_and_unload()
    assert not any(isinstance(m, LoraLinear) for m in merged.modules())
    assert set(merged.state_dict()) == set(gpt().state_dict())
    np.testing.assert_allclose(logits_of(merged, idx), expected, rtol=1e-6, atol=1e-6)


def test_unload_gives_back_the_base_model():
    model = gpt()
    idx = ids(model)
    before = logits_of(model, idx)
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"]))
    randomise_lora(peft)
    np.testing.assert_array_equal(logits_of(peft.unload(), idx), before)


def test_bf16_merge_precision_loss_is_measured():
    """A bf16 base: merge rounds W + s B A to bf16 and unmerge rounds again (peft does the same)."""
    model = gpt()
    model.to(tinyml.bfloat16)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"]))
    randomise_lora(peft, std=0.02)
    W = peft.base_model.transformer.h[0].attn.c_attn.base_layer.weight
    w0 = W.detach().float().numpy().copy()
    idx = ids(peft)
    unmerged = logits_of(peft, idx)
    peft.merge()
    merged = logits_of(peft, idx)
    peft.unmerge()
    round_trip = np.abs(W.detach().float().numpy() - w0).max()
    ulp = np.abs(w0).max() * 2.0 ** -8  # bf16 keeps 8 significant bits
    print(f"bf16 merge: max |logit diff| {np.abs(merged - unmerged).max():.3e}, "
          f"weight round trip {round_trip:.3e} (|W| max {np.abs(w0).max():.3f})")
    assert 0 < round_trip <= 2 * ulp  # lossy, but within rounding twice
    assert np.abs(merged - unmerged).max() < 0.05


def test_several_adapters_switch_and_only_the_active_one_trains():
    model = gpt()
    idx = ids(model)
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"]))
    peft.add_adapter("other", LoraConfig(r=3, target_modules=["c_fc"]))
    randomise_lora(peft)
    assert peft.active_adapter == "default"
    trainable = {n for n, p in peft.named_parameters() if p.requires_grad}
    assert trainable and all(".default." in n for n in trainable)
    first = logits_of(peft, idx)
    peft.set_adapter("other")
    trainable = {n for n, p in peft.named_parameters() if p.requires_grad}
    assert trainable and all(".other." in n and "c_fc" in n for n in trainable)
    second = logits_of(peft, idx)
    assert np.abs(first - second).max() > 1e-3
    with peft.disable_adapter():
        np.testing.assert_array_equal(logits_of(peft, idx), logits_of(gpt(), idx))
    np.testing.assert_array_equal(logits_of(peft, idx), second)
    peft.delete_adapter("other")
    assert peft.active_adapter == "default"
    np.testing.assert_array_equal(logits_of(peft, idx), first)


def test_disable_adapter_unmerges_a_merged_adapter():
    model = gpt()
    idx = ids(model)
    base = logits_of(model, idx)
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"]))
    randomise_lora(peft)
    peft.merge()
    with peft.disable_adapter():
        np.testing.assert_allclose(logits_of(peft, idx), base, atol=1e-6)


def test_lora_dropout_is_on_the_lora_path_in_training_only():
    peft = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"], lora_dropout=0.5))
    randomise_lora(peft)
    layer = peft.base_model.transformer.h[0].attn.c_attn
    x = tinyml.randn(3, layer.in_features)
    layer.train()
    with tinyml.no_grad():
        a, b = layer(x).detach().numpy(), layer(x).detach().numpy()
        layer.eval()
        c = layer(x).detach().numpy()
        base = layer.base_layer(x).detach().numpy()
    assert np.abs(a - b).max() > 0  # different masks
    with tinyml.no_grad():
        expected = base + layer.lora_path("default", x).numpy()
    np.testing.assert_allclose(c, expected, rtol=1e-6, atol=1e-6)


def test_training_learns_and_leaves_the_base_untouched():
    """lm_head is read as `.weight` by GPT's forward: the LoRA wrapper's weight is W + s B A."""
    model = gpt(tied=False)
    base_state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc", "lm_head"]))
    idx = ids(peft, batch=4)
    targets = tinyml.cat([idx[:, 1:], idx[:, :1]], dim=1)
    opt = tinyml.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(20):
        _, loss = peft(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    for k, v in peft.base_model.state_dict().items():
        if ".lora_" not in k:
            np.testing.assert_array_equal(v.detach().numpy(), base_state[k.replace(".base_layer", "")])


def test_target_regex_all_linear_and_rank_pattern():
    peft = get_peft_model(gpt(), LoraConfig(r=2, target_modules=r".*\.h\.1\.attn\.c_attn"))
    wrapped = [n for n, m in peft.named_modules() if isinstance(m, LoraLinear)]
    assert wrapped == ["base_model.transformer.h.1.attn.c_attn"]
    peft = get_peft_model(llama(tied=False), LoraConfig(r=2, target_modules="all-linear",
                                                        rank_pattern={"down_proj": 4}))
    wrapped = {n.split(".")[-1]: m for n, m in peft.named_modules() if isinstance(m, LoraLinear)}
    assert set(wrapped) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert wrapped["down_proj"].r["default"] == 4 and wrapped["q_proj"].r["default"] == 2


def test_print_trainable_parameters(capsys):
    peft = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"]))
    peft.print_trainable_parameters()
    trainable, total = peft.get_nb_trainable_parameters()
    c = peft.config.n_embd
    assert trainable == peft.config.n_layer * 2 * (c + 3 * c)
    assert capsys.readouterr().out == (f"trainable params: {trainable:,d} || all params: {total:,d} || "
                                       f"trainable%: {100 * trainable / total:.4f}\n")


def test_peft_model_forwards_attributes_to_the_base():
    peft = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"]))
    assert isinstance(peft, PeftModel) and peft.max_positions == peft.base_model.max_positions


# ---- errors --------------------------------------------------------------------------------------
def test_target_that_matches_nothing_names_the_pattern_and_the_modules():
    with pytest.raises(ValueError, match=r"\['q_proj'\] matched no .*'c_attn'"):
        get_peft_model(gpt(), LoraConfig(target_modules=["q_proj"]))


def test_rank_larger_than_the_layer_names_module_and_shape():
    with pytest.raises(ValueError, match=r"r=40 .*transformer.h.0.attn.c_attn.*\(96, 32\)"):
        get_peft_model(gpt(), LoraConfig(r=40, target_modules=["c_attn"]))


def test_merging_twice_names_the_module_and_shape():
    peft = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"]))
    peft.merge()
    with pytest.raises(ValueError, match=r"merged into 'transformer.h.0.attn.c_attn' \(weight \(96, 32\)\)"):
        peft.merge()


def test_unknown_adapter_duplicate_adapter_and_bias_option():
    peft = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"]))
    with pytest.raises(ValueError, match="'nope' not found; adapters: \\['default'\\]"):
        peft.set_adapter("nope")
    with pytest.raises(ValueError, match="already exists"):
        peft.add_adapter("default", LoraConfig(r=2, target_modules=["c_attn"]))
    with pytest.raises(NotImplementedError, match="bias='all'"):
        LoraConfig(bias="all")


def test_safe_merge_refuses_nan_and_fan_in_fan_out_warns():
    with pytest.warns(UserWarning, match="fan_in_fan_out"):
        peft = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True))
    layer = peft.base_model.transformer.h[0].attn.c_attn
    B = layer.lora_B["default"].weight
    B.data = tinyml.full(tuple(B.shape), float("nan"))
    with pytest.raises(ValueError, match="NaN or inf .*transformer.h.0.attn.c_attn"):
        peft.merge(safe_merge=True)


def test_an_unknown_method_config_is_refused_by_name():
    from tinyml.models.peft import inject

    with pytest.raises(TypeError, match="dict is not an adapter config"):
        inject(gpt(), {"peft_type": "LORA"})
    with pytest.raises(ValueError, match="adapter_name must be a non-empty string without '.'"):
        inject(gpt(), LoraConfig(target_modules=["c_attn"]), "a.b")


def test_a_failed_injection_leaves_the_model_as_it_was():
    model = gpt()
    model.transformer.wpe.weight.requires_grad_(False)
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    with pytest.raises(ValueError):
        get_peft_model(model, LoraConfig(r=2, target_modules=["nothing_here"]))
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before
    assert not any(isinstance(m, LoraLinear) for m in model.modules())
