"""Ladder Side-Tuning: gates, pruned initialisation, a backbone without a graph, the KV cache."""
import numpy as np
import pytest
from peft_helpers import bert, gpt, ids, llama, logits_of
from tinyml.models import generate
from tinyml.models.peft import LoraConfig, LSTConfig, get_peft_model

import tinyml


def _side(model):
    return model.base_model.ladder_side.side["default"]


def _loss(model, idx):
    out = model(idx, tinyml.cat([idx[:, 1:], idx[:, :1]], dim=1))
    return out[1]


@pytest.mark.parametrize("build", [gpt, llama, bert])
def test_starts_as_the_backbone_with_half_open_gates(build):
    model = build()
    idx = ids(model)
    base = logits_of(model, idx)
    lst = get_peft_model(model, LSTConfig(reduction_factor=4))
    side = _side(lst)
    with tinyml.no_grad():
        np.testing.assert_allclose(side.gates().numpy(), 0.5)  # sigmoid(0 / 0.1)
    np.testing.assert_array_equal(logits_of(lst, idx), base)  # up starts at zero
    trainable = {n.split(".")[4] for n, p in lst.named_parameters() if p.requires_grad}
    assert trainable == {"down", "blocks", "alpha", "norm", "up"}


def test_side_blocks_are_the_backbone_blocks_pruned_by_magnitude():
    model = gpt()
    full = _side(get_peft_model(gpt(), LSTConfig(reduction_factor=1)))
    attn = model.transformer.h[1].attn.c_attn.weight.detach().numpy()
    block = full.blocks[1]
    np.testing.assert_array_equal(block.attn.q.weight.detach().numpy(), attn[:32])  # r=1 keeps everything
    np.testing.assert_array_equal(block.fc.weight.detach().numpy(),
                                  model.transformer.h[1].mlp.c_fc.weight.detach().numpy())
    side = _side(get_peft_model(gpt(), LSTConfig(reduction_factor=4)))
    fc = model.transformer.h[0].mlp.c_fc.weight.detach().numpy()
    proj = model.transformer.h[0].mlp.c_proj.weight.detach().numpy()
    down = side.down[1].weight.detach().numpy()
    channels = np.nonzero(down)[1]
    assert down.shape == (8, 32) and np.array_equal(down[np.arange(8), channels], np.ones(8))
    small = side.blocks[0].fc.weight.detach().numpy()
    assert small.shape == (32, 8)  # I / r units over the kept channels
    kept_units = [int(np.nonzero(np.all(np.isclose(fc[:, channels], row), axis=1))[0][0]) for row in small]
    score = np.abs(fc[:, channels]).sum(1) + np.abs(proj[channels]).sum(0)
    assert score[kept_units].min() >= np.sort(score)[-32]  # the units with the largest L1 weight


def test_backbone_records_no_graph_and_gets_no_gradient():
    lst = get_peft_model(gpt(), LSTConfig(reduction_factor=4))
    with tinyml.no_grad():
        tinyml.nn.init.normal_(_side(lst).up.weight, std=0.1)
    idx = ids(lst, batch=4)
    saved_lst = tinyml.memory.saved_bytes(loss := _loss(lst, idx))
    loss.backward()
    assert all(p.grad is None for n, p in lst.named_parameters() if "ladder_side" not in n)
    assert all(p.grad is not None for n, p in lst.named_parameters() if "ladder_side" in n)
    lora = get_peft_model(gpt(), LoraConfig(r=4, target_modules="all-linear"))
    saved_lora = tinyml.memory.saved_bytes(_loss(lora, idx))
    assert saved_lst < 0.6 * saved_lora


@pytest.mark.parametrize("build", [gpt, llama])
def test_generation_with_the_kv_cache_matches_without(build):
    lst = get_peft_model(build(), LSTConfig(reduction_factor=4))
    with tinyml.no_grad():
        tinyml.nn.init.normal_(_side(lst).up.weight, std=0.3)
    with_cache = generate(lst, [[1, 2, 3], [4, 5, 6]], 6, temperature=0)
    assert with_cache == generate(lst, [[1, 2, 3], [4, 5, 6]], 6, temperature=0, use_cache=False)


def test_drop_layers_and_random_init():
    lst = get_peft_model(gpt(), LSTConfig(reduction_factor=4, drop_layers=[0], init="random"))
    side = _side(lst)
    assert side.layer_ids == [1] and len(side.blocks) == 1 and len(side.down) == 2


def test_learns():
    lst = get_peft_model(gpt(tied=False), LSTConfig(reduction_factor=2))
    idx = ids(lst, batch=4)
    opt = tinyml.optim.AdamW([p for p in lst.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(12):
        loss = _loss(lst, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


def test_errors():
    with pytest.raises(ValueError, match="'magnitude', 'fisher' or 'random', got 'taylor'"):
        LSTConfig(init="taylor")
    with pytest.raises(ValueError, match="needs fisher_batches"):
        get_peft_model(gpt(), LSTConfig(init="fisher"))
    with pytest.raises(ValueError, match=r"drop_layers \[0, 1\] must name some \(not all\) of the 2 layers"):
        get_peft_model(gpt(), LSTConfig(drop_layers=[0, 1]))
    with pytest.raises(ValueError, match="hidden size 32 is not divisible by reduction_factor 5"):
        get_peft_model(gpt(), LSTConfig(reduction_factor=5))
    lst = get_peft_model(gpt(), LSTConfig())
    with pytest.raises(TypeError, match="ladder_side.*cannot be merged"):
        lst.merge_and_unload()
    idx = ids(lst)
    base = lst.unload()
    assert not hasattr(base, "ladder_side")
    np.testing.assert_array_equal(logits_of(base, idx), logits_of(gpt(), idx))
