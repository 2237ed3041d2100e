"""Ladder Side-Tuning's Fisher-pruned init: the Fisher information itself, and side blocks that
keep the top-Fisher channels, head dims and MLP units."""
import numpy as np
import pytest
from peft_helpers import gpt, ids
from tinyml.models.peft import LSTConfig, get_peft_model, ladder
from tinyml.models.peft.ladder_fisher import fisher_information

import tinyml
import tinyml.nn as nn


def test_fisher_information_is_the_mean_squared_gradient_and_leaves_the_weights_as_they_were():
    lin = nn.Linear(3, 2, bias=False)
    lin.weight.requires_grad_(False)  # frozen, as the backbone is when LST is injected
    c = np.array([2.0, -1.0], dtype=np.float32)
    xs = [np.array([[1.0, 0.5, -2.0]], dtype=np.float32), np.array([[0.0, 3.0, 1.0]], dtype=np.float32)]

    def loss(model, x):  # L = c . (W x): dL/dW = c x^T
        return (model(tinyml.tensor(x)) * tinyml.tensor(c)).sum()

    fisher = fisher_information(lin, [lin.weight], xs, loss)
    want = np.mean([np.outer(c, x[0]) ** 2 for x in xs], axis=0)
    np.testing.assert_allclose(fisher[id(lin.weight)], want, rtol=1e-6)
    assert not lin.weight.requires_grad and lin.weight.grad is None
    with pytest.raises(ValueError, match="at least one batch"):
        fisher_information(lin, [lin.weight], [], loss)
    with pytest.raises(TypeError, match="gave no scalar loss"):
        fisher_information(lin, [lin.weight], [tinyml.randn(1, 3)])


def _batches(model, n=3):
    idx = ids(model, batch=2, length=8)
    out = []
    for k in range(n):
        shifted = tinyml.cat([idx[:, k + 1:], idx[:, :k + 1]], dim=1)
        out.append((shifted, tinyml.cat([shifted[:, 1:], shifted[:, :1]], dim=1)))
    return out


def _kept_rows(small: np.ndarray, big: np.ndarray) -> list[int]:
    """Which rows of big (already cut to the kept columns) the side matrix's rows are."""
    return [int(np.nonzero(np.all(big == row, axis=1))[0][0]) for row in small]


def test_side_blocks_keep_the_top_fisher_channels_head_dims_and_units(monkeypatch):
    # a hand-built Fisher: every score 0 except chosen channels, head dims and MLP units, which the
    # weights' magnitudes do not single out
    model = gpt()
    d, inner, D = 32, 128, 16
    channels = np.array([1, 4, 9, 12, 18, 23, 27, 30])
    units = np.arange(3, 3 + 4 * 32, 4)[:32]  # 32 of the 128 units (I / r with r = 4)
    dims_qk, dims_v = np.array([0, 5, 10, 15]), np.array([2, 3, 7, 11])  # D / r = 4 of each head's 16

    def hand_built(model_, weights, batches, loss_fn):
        scores = {}
        for block in model.transformer.h:
            attn = np.zeros((3 * d, d), np.float32)
            attn[:, channels] = 1.0  # the chosen channels are read
            for h in range(2):
                attn[h * D + dims_qk, :] += 5.0  # q rows
                attn[d + h * D + dims_qk, :] += 5.0  # k rows
                attn[2 * d + h * D + dims_v, :] += 5.0  # v rows
            fc = np.zeros((inner, d), np.float32)
            fc[units] = 3.0
            scores[id(block.attn.c_attn.weight)] = attn
            scores[id(block.attn.c_proj.weight)] = np.zeros((d, d), np.float32)
            scores[id(block.mlp.c_fc.weight)] = fc
            scores[id(block.mlp.c_proj.weight)] = np.zeros((d, inner), np.float32)
        return scores

    monkeypatch.setattr(ladder, "fisher_information", hand_built)
    side = get_peft_model(model, LSTConfig(reduction_factor=4, init="fisher", fisher_batches=[()])) \
        .base_model.ladder_side.side["default"]
    down = side.down[1].weight.detach().numpy()
    np.testing.assert_array_equal(np.nonzero(down)[1], channels)
    h0 = model.transformer.h[0]
    fc = h0.mlp.c_fc.weight.detach().numpy()[:, channels]
    np.testing.assert_array_equal(sorted(_kept_rows(side.blocks[0].fc.weight.detach().numpy(), fc)), units)
    attn = h0.attn.c_attn.weight.detach().numpy()[:, channels]
    q_rows = _kept_rows(side.blocks[0].attn.q.weight.detach().numpy(), attn[:d])
    v_rows = _kept_rows(side.blocks[0].attn.v.weight.detach().numpy(), attn[2 * d:])
    np.testing.assert_array_equal(q_rows, np.concatenate([dims_qk, D + dims_qk]))
    np.testing.assert_array_equal(v_rows, np.concatenate([dims_v, D + dims_v]))
    magnitude = get_peft_model(gpt(), LSTConfig(reduction_factor=4)).base_model.ladder_side.side["default"]
    assert not np.array_equal(np.nonzero(magnitude.down[1].weight.detach().numpy())[1], channels)


def test_fisher_init_keeps_the_channels_of_the_largest_squared_gradients():
    model = gpt()
    batches = _batches(model)
    # the Fisher information computed here by plain autograd, independently of ladder_fisher.py
    weights = {n: p for n, p in model.named_parameters() if p.ndim == 2 and ".h." in n}
    total = {n: 0.0 for n in weights}
    for w in weights.values():
        w.requires_grad_(True)
    for batch in batches:
        model.zero_grad()
        model(*batch)[1].backward()
        for n, w in weights.items():
            total[n] = total[n] + w.grad.numpy().astype(np.float64) ** 2
    score = np.zeros(32)
    for n, f in total.items():
        score += f.sum(1) if n.endswith(("attn.c_proj.weight", "mlp.c_proj.weight")) else f.sum(0)
    want = np.sort(np.argsort(-score, kind="stable")[:8])
    model.zero_grad()

    lst = get_peft_model(model, LSTConfig(reduction_factor=4, init="fisher", fisher_batches=batches))
    down = lst.base_model.ladder_side.side["default"].down[0].weight.detach().numpy()
    np.testing.assert_array_equal(np.nonzero(down)[1], want)
    assert all(not p.requires_grad for n, p in lst.named_parameters() if "ladder_side" not in n)
    assert all(p.grad is None for n, p in lst.named_parameters() if "ladder_side" not in n)


def test_a_fisher_config_saves_without_its_batches_and_loads():
    import json

    from tinyml.models.peft.interop import config_from_dict, config_to_dict

    model = gpt()
    config = LSTConfig(reduction_factor=4, init="fisher", fisher_batches=_batches(model, 1))
    data = json.loads(json.dumps(config_to_dict(config)))
    assert "fisher_batches" not in data and data["init"] == "fisher"
    back = config_from_dict(data)
    assert back.init == "magnitude" and back.reduction_factor == 4  # its weights come from the file
