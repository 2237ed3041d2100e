"""Adapt-Pruner (train/pruning): removing a head or an MLP channel is exactly zeroing its share of the
output projection (both attention paths and the KV cache), the pruned model saves and loads with its
per-layer sizes, the Taylor scores and layer importances follow their formulas, the adaptive loop
reaches the target while training, and targets it cannot reach are one-line errors."""
import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig, generate
from tinyml.train.pruning import (
    AdaptPruneConfig,
    PrunableGPT,
    PrunableGPTConfig,
    adapt_prune,
    check_target,
    group_scores,
    layer_importance,
    load_pruned,
    magnitude_prune,
    prunable_size,
    prune_layer,
    save_pruned,
)
from tinyml.train.pruning.adapt import layer_sparsities, round_sparsity

import tinyml

V, T = 30, 12


def _gpt(**kw):
    tinyml.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32, **kw))


def _idx(seed=0, shape=(2, T)):
    return tinyml.tensor(np.random.default_rng(seed).integers(0, V, shape))


def _logits(model, idx):
    model.eval()
    with tinyml.no_grad():
        return model(idx)[0].numpy()


class Batches:
    def __init__(self, seed=1, batch=4):
        self.rng, self.batch = np.random.default_rng(seed), batch

    def next_batch(self):
        # a learnable stream: each token is the previous one plus one (mod V)
        start = self.rng.integers(0, V, (self.batch, 1))
        d = (start + np.arange(T + 1)) % V
        return d[:, :-1], d[:, 1:]


def _zeroed(model, layer, heads=(), channels=()):
    """A copy of `model` whose given heads / channels contribute nothing (their c_proj columns are 0)."""
    out = PrunableGPT(PrunableGPTConfig(**model.config.to_dict()))
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    D = model.config.n_embd // model.config.n_head
    for h in heads:
        state[f"transformer.h.{layer}.attn.c_proj.weight"][:, h * D:(h + 1) * D] = 0
    for c in channels:
        state[f"transformer.h.{layer}.mlp.c_proj.weight"][:, c] = 0
    out.load_state_dict({k: tinyml.tensor(v) for k, v in state.items()})
    return out


@pytest.mark.parametrize("qk_layernorm", [False, True])  # the packed attention path, then attend's
def test_pruning_a_head_or_channel_is_zeroing_its_output(qk_layernorm):
    gpt = _gpt(qk_layernorm=qk_layernorm)
    pruned = PrunableGPT.from_gpt(gpt)
    idx = _idx()
    np.testing.assert_array_equal(_logits(pruned, idx), _logits(gpt, idx))
    reference = _zeroed(pruned, 1, heads=(0, 2), channels=(3, 50, 127))
    keep_channels = [c for c in range(128) if c not in (3, 50, 127)]
    prune_layer(pruned, 1, heads=[3, 1], channels=keep_channels)
    assert pruned.config.layer_heads == [4, 2] and pruned.config.layer_inner == [128, 125]
    assert pruned.transformer.h[1].attn.c_attn.weight.shape == (3 * 2 * 8, 32)
    np.testing.assert_allclose(_logits(pruned, idx), _logits(reference, idx), rtol=1e-5, atol=1e-6)
    # generation with the KV cache goes through the pruned heads too
    ids = generate(pruned, [[1, 2, 3]], 5, temperature=0.0)
    assert ids == generate(reference, [[1, 2, 3]], 5, temperature=0.0)


def test_backward_matches_the_zeroed_model():
    pruned = PrunableGPT.from_gpt(_gpt())
    prune_layer(pruned, 0, heads=[0, 1, 2], channels=list(range(100)))
    reference = _zeroed(PrunableGPT.from_gpt(_gpt()), 0, heads=(3,), channels=range(100, 128))
    idx, tgt = _idx(), _idx(seed=1)
    for m in (pruned, reference):
        m.train()
        m(idx, tgt)[1].backward()
    np.testing.assert_allclose(pruned.transformer.wte.weight.grad.numpy(),
                               reference.transformer.wte.weight.grad.numpy(), rtol=1e-4, atol=1e-7)
    ref_fc = reference.transformer.h[0].mlp.c_fc.weight.grad.numpy()[:100]
    got_fc = pruned.transformer.h[0].mlp.c_fc.weight.grad.numpy()
    np.testing.assert_allclose(got_fc, ref_fc, rtol=1e-4, atol=1e-7)


def test_save_and_load_keep_the_per_layer_sizes(tmp_path):
    pruned = PrunableGPT.from_gpt(_gpt())
    prune_layer(pruned, 0, heads=[1], channels=[0, 5, 9])
    save_pruned(pruned, str(tmp_path / "m"))
    loaded = load_pruned(str(tmp_path / "m"))
    assert loaded.config.layer_heads == [1, 4] and loaded.config.layer_inner == [3, 128]
    assert loaded.num_parameters() == pruned.num_parameters()
    idx = _idx()
    np.testing.assert_array_equal(_logits(loaded, idx), _logits(pruned, idx))
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_pruned(str(tmp_path / "nothing"))


def test_taylor_scores_follow_the_formula():
    model = PrunableGPT.from_gpt(_gpt())
    model(_idx(), _idx(seed=1))[1].backward()
    heads, channels = group_scores(model, 1)
    attn, mlp = model.transformer.h[1].attn, model.transformer.h[1].mlp

    def s(p):
        return np.abs(p.detach().numpy().astype(np.float64) * p.grad.numpy())

    rows = np.r_[16:24, 48:56, 80:88]  # head 2 of 4, D = 8: its q, k and v rows
    want = (s(attn.c_attn.weight)[rows].sum() + s(attn.c_attn.bias)[rows].sum()
            + s(attn.c_proj.weight)[:, 16:24].sum())
    assert heads[2] == pytest.approx(want, rel=1e-6)
    want = s(mlp.c_fc.weight)[7].sum() + s(mlp.c_fc.bias)[7] + s(mlp.c_proj.weight)[:, 7].sum()
    assert channels[7] == pytest.approx(want, rel=1e-6)
    mag_heads, _ = group_scores(model, 1, "magnitude")
    assert mag_heads.shape == (4,) and (mag_heads > 0).all()
    fresh = PrunableGPT.from_gpt(_gpt())
    with pytest.raises(ValueError, match="layer 0's weights have none"):
        group_scores(fresh, 0)


def test_layer_importance_is_one_minus_cosine():
    model = PrunableGPT.from_gpt(_gpt())
    block = model.transformer.h[1]
    with tinyml.no_grad():  # a block that adds nothing to its input: output == input, importance 0
        for lin in (block.attn.c_proj, block.mlp.c_proj):
            lin.weight.copy_(lin.weight * 0)
            lin.bias.copy_(lin.bias * 0)
    imp = layer_importance(model, [(_idx(), None), (_idx(seed=2), None)])
    assert imp[1] == pytest.approx(0.0, abs=1e-6) and imp[0] > 1e-3
    s = layer_sparsities(np.array([0.1, 0.2, 0.3]), 0.4, 0.5)  # z = [-0.5, 0, 0.5]
    np.testing.assert_allclose(s, [0.4 * 1.25, 0.4, 0.4 * 0.75])


def test_adapt_prune_reaches_the_target_while_training(tmp_path):
    gpt = _gpt()
    target = 16_000
    logs = []
    pruned, history = adapt_prune(gpt, Batches(), AdaptPruneConfig(target_params=target, steps=24, rounds=3,
                                                                   warmup_steps=2, lr=3e-3), log=logs.append)
    assert [h["round"] for h in history] == [1, 2, 3] and len(logs) == 3
    params = [h["params"] for h in history]
    assert params == sorted(params, reverse=True) and params[0] < gpt.num_parameters()
    assert 0.97 * target <= pruned.num_parameters() <= target
    assert pruned.num_parameters() == history[-1]["params"]
    with tinyml.no_grad():
        x, y = Batches(seed=9).next_batch()
        loss = pruned.eval()(tinyml.tensor(x), tinyml.tensor(y))[1].item()
    assert loss < np.log(V) - 0.5  # it learned the +1 stream while being pruned
    save_pruned(pruned, str(tmp_path / "p"))
    assert load_pruned(str(tmp_path / "p")).config.layer_inner == history[-1]["layer_inner"]


def test_magnitude_prune_keeps_the_largest_groups():
    gpt = _gpt()
    with tinyml.no_grad():
        w = gpt.transformer.h[0].mlp.c_proj.weight
        big = np.zeros(w.shape, dtype=np.float32)
        big[:, 77] = 5.0
        w.copy_(w + tinyml.tensor(big))
    ref = gpt.transformer.h[0].mlp.c_proj.weight.detach().numpy()[:, 77].copy()
    pruned = magnitude_prune(gpt, 16_000)
    assert pruned.num_parameters() <= 16_000
    kept = pruned.transformer.h[0].mlp.c_proj.weight.detach().numpy()
    assert any(np.array_equal(kept[:, j], ref) for j in range(kept.shape[1]))


def test_targets_and_indices_it_cannot_take_are_errors():
    gpt = _gpt()
    n = gpt.num_parameters()
    with pytest.raises(ValueError, match=f"target of {n + 1:,} parameters is larger than the model \\({n:,}"):
        check_target(PrunableGPT.from_gpt(gpt), n + 1)
    with pytest.raises(ValueError, match="larger than the model"):
        adapt_prune(gpt, Batches(), AdaptPruneConfig(target_params=n * 2, steps=4, rounds=2))
    now, floor = prunable_size(PrunableGPT.from_gpt(gpt).config)
    with pytest.raises(ValueError, match="below what structured pruning can reach"):
        magnitude_prune(gpt, n - now + floor - 1)
    with pytest.raises(ValueError, match="positive int, got 1.5"):
        check_target(PrunableGPT.from_gpt(gpt), 1.5)
    with pytest.raises(ValueError, match=r"layer 0 keeps heads \[\]; expected 1 to 4 distinct indices"):
        prune_layer(PrunableGPT.from_gpt(gpt), 0, heads=[])
    with pytest.raises(ValueError, match="layer_heads must hold ints in 1..4"):
        PrunableGPTConfig(n_layer=2, n_head=4, n_embd=32, layer_heads=[4, 5])


def test_adam_moments_follow_the_kept_weights():
    model = PrunableGPT.from_gpt(_gpt())
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3)
    model(_idx(), _idx(seed=1))[1].backward()
    opt.step()
    fc = model.transformer.h[0].mlp.c_fc
    old_m = opt.state[fc.weight]["exp_avg"].numpy().copy()
    old_v_bias = opt.state[fc.bias]["exp_avg_sq"].numpy().copy()
    states = {id(p): (p, s) for p, s in opt.state.items()}
    keep = [2, 9, 40]
    prune_layer(model, 0, channels=keep, states=states)
    new_fc = model.transformer.h[0].mlp.c_fc
    new_w, new_b = states[id(new_fc.weight)][1], states[id(new_fc.bias)][1]
    np.testing.assert_array_equal(new_w["exp_avg"].numpy(), old_m[keep])
    np.testing.assert_array_equal(new_b["exp_avg_sq"].numpy(), old_v_bias[keep])
    assert float(new_w["step"].item()) == 1.0
    assert id(fc.weight) not in states  # the pruned-away tensor's entry moved, not copied


def test_sparsity_schedules_and_importance_in_eval_mode():
    # linear: equal steps of sparsity; geometric: each round keeps the same fraction of what is left
    assert [round_sparsity(k, 4, 0.8, "linear") for k in (1, 2, 4)] == pytest.approx([0.2, 0.4, 0.8])
    kept = [1 - round_sparsity(k, 4, 0.9375, "geometric") for k in range(1, 5)]
    np.testing.assert_allclose(kept, [0.5, 0.25, 0.125, 0.0625])
    with pytest.raises(ValueError, match="schedule must be 'linear' or 'geometric', got 'cubic'"):
        adapt_prune(_gpt(), Batches(), AdaptPruneConfig(target_params=16_000, steps=4, rounds=2,
                                                        schedule="cubic"))
    # with dropout the importance is still deterministic (measured in eval mode), and the mode is restored
    model = PrunableGPT.from_gpt(_gpt(dropout=0.5)).train()
    batches = [(_idx(), None)]
    np.testing.assert_array_equal(layer_importance(model, batches), layer_importance(model, batches))
    assert model.training
    after = {}
    for schedule in ("linear", "geometric"):
        pruned, history = adapt_prune(_gpt(), Batches(), AdaptPruneConfig(
            target_params=16_000, steps=6, rounds=3, warmup_steps=2, schedule=schedule))
        assert 0.97 * 16_000 <= pruned.num_parameters() <= 16_000 and len(history) == 3
        after[schedule] = [h["params"] for h in history]
        if schedule == "geometric":  # every round lands at (or just under) its share of the prunable part
            now, _ = prunable_size(PrunableGPT.from_gpt(_gpt()).config)
            fixed, final = _gpt().num_parameters() - now, 1 - (16_000 - (_gpt().num_parameters() - now)) / now
            for k, h in enumerate(history[:2], 1):
                nominal = fixed + now * (1 - round_sparsity(k, 3, final, "geometric"))
                assert 0.95 * nominal <= h["params"] <= nominal + 1
    # the geometric schedule cuts deeper first, so fewer parameters remain after rounds 1 and 2
    assert all(g < lin for g, lin in zip(after["geometric"][:2], after["linear"][:2]))
