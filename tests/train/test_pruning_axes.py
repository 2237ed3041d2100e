"""Adapt-Pruner's other structural axes (train/pruning/axes.py): removing head dims is exactly zeroing
them when the softmax keeps the source's scale (and is not with 1/sqrt(new dim)); removing a block is
exactly skipping it; residual-width pruning shrinks every weight that has the channel (checked against
a state dict sliced here by name); pruned models save and load through from_pretrained with the same
logits; Adam's moments follow; the per-axis targets are checked with one-line errors."""
import math
import re

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig, from_pretrained, generate
from tinyml.train.pruning import (
    AdaptPruneConfig,
    PrunableGPT,
    PrunableGPTConfig,
    adapt_prune,
    check_target,
    head_dim_scores,
    keep_top_dims,
    layer_importance,
    load_pruned,
    magnitude_prune,
    prune_blocks,
    prune_head_dims,
    prune_layer,
    prune_width,
    save_pruned,
    width_scores,
)
from tinyml.train.pruning.allocate import axis_at, param_count

import tinyml

V, T = 30, 12


def _gpt(**kw):
    tinyml.manual_seed(0)
    base = dict(vocab_size=V, block_size=16, n_layer=3, n_head=4, n_embd=32)
    return GPT(GPTConfig(**{**base, **kw}))


def _idx(seed=0, shape=(2, T)):
    return tinyml.tensor(np.random.default_rng(seed).integers(0, V, shape))


def _logits(model, idx):
    model.eval()
    with tinyml.no_grad():
        return model(idx)[0].numpy()


def _copy_with(model, edit):
    """A PrunableGPT of model's config with edit(state) applied to a numpy copy of its weights."""
    out = PrunableGPT(PrunableGPTConfig(**model.config.to_dict()))
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    edit(state)
    out.load_state_dict({k: tinyml.tensor(v) for k, v in state.items()})
    return out


class Batches:
    def __init__(self, seed=1, batch=4):
        self.rng, self.batch = np.random.default_rng(seed), batch

    def next_batch(self):  # each token is the previous one plus one (mod V): learnable
        d = (self.rng.integers(0, V, (self.batch, 1)) + np.arange(T + 1)) % V
        return d[:, :-1], d[:, 1:]


QK = [[0, 2, 5, 7], [1, 2, 3, 4], [0, 1, 6, 7], [3, 4, 5, 6]]  # per head (4 heads of 8 dims): kept q/k dims
VD = [[7, 6, 0, 1], [0, 2, 4, 6], [1, 3, 5, 7], [2, 3, 4, 5]]  # kept value dims


def _zero_dims(layer, H=4, D=8):
    """The source with the dims QK / VD drop zeroed: q and k rows (weights, biases), c_proj columns."""
    def edit(state):
        w, b = (state[f"transformer.h.{layer}.attn.c_attn.{name}"] for name in ("weight", "bias"))
        for h in range(H):
            for i in sorted(set(range(D)) - set(QK[h])):
                for part in (0, 1):
                    w[part * H * D + h * D + i], b[part * H * D + h * D + i] = 0, 0
            for i in sorted(set(range(D)) - set(VD[h])):
                state[f"transformer.h.{layer}.attn.c_proj.weight"][:, h * D + i] = 0
    return edit


@pytest.mark.parametrize("dropout", [0.0, 0.1])  # eval: the packed kernel; with dropout, attend's path
def test_pruning_head_dims_is_zeroing_them_at_the_source_scale(dropout):
    src = PrunableGPT.from_gpt(_gpt(dropout=dropout))
    reference = _copy_with(src, _zero_dims(1))
    pruned = PrunableGPT.from_gpt(_gpt(dropout=dropout))
    prune_head_dims(pruned, 1, QK, VD)
    attn = pruned.transformer.h[1].attn
    assert attn.c_attn.weight.shape == (3 * 4 * 4, 32) and attn.c_proj.weight.shape == (32, 16)
    assert pruned.config.layer_head_dim == [8, 4, 8] and attn.attn_scale == 1 / math.sqrt(8)
    idx = _idx()
    np.testing.assert_allclose(_logits(pruned, idx), _logits(reference, idx), rtol=1e-5, atol=1e-6)
    if dropout:  # the KV-cache path (attend, q scaled by attn_scale sqrt(D)) too
        assert generate(pruned, [[1, 2, 3]], 6, temperature=0.0) == generate(reference, [[1, 2, 3]], 6,
                                                                             temperature=0.0)
        return
    # at the attention itself, on a stream large enough for the softmax to matter: the source's scale
    # gives the zeroed source's output, the new dim's own 1/sqrt(4) (a sharper softmax) does not
    x = tinyml.tensor(np.random.default_rng(3).normal(0, 20, (2, T, 32)).astype(np.float32))
    with tinyml.no_grad():
        want = reference.transformer.h[1].attn(x).numpy()
        np.testing.assert_allclose(attn(x).numpy(), want, rtol=1e-4, atol=1e-5)
        attn.attn_scale = None
        assert np.abs(attn(x).numpy() - want).max() > 1e-2 * np.abs(want).max()


def test_head_dim_gradients_match_the_zeroed_model():
    pruned = PrunableGPT.from_gpt(_gpt())
    prune_head_dims(pruned, 0, QK, VD)
    reference = _copy_with(PrunableGPT.from_gpt(_gpt()), _zero_dims(0))
    for m in (pruned, reference):
        m.train()
        m(_idx(), _idx(seed=1))[1].backward()
    np.testing.assert_allclose(pruned.transformer.wte.weight.grad.numpy(),
                               reference.transformer.wte.weight.grad.numpy(), rtol=1e-4, atol=1e-7)
    # the kept v rows of head 2 (dims 1, 3, 5, 7) get the reference's gradient
    got = pruned.transformer.h[0].attn.c_attn.weight.grad.numpy()[2 * 16 + 2 * 4: 2 * 16 + 3 * 4]
    want = reference.transformer.h[0].attn.c_attn.weight.grad.numpy()[64 + 16 + np.array(VD[2])]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_head_dim_scores_and_top_dims():
    model = PrunableGPT.from_gpt(_gpt())
    model(_idx(), _idx(seed=1))[1].backward()
    qk, v = head_dim_scores(model, 2)
    attn = model.transformer.h[2].attn

    def s(p):
        return np.abs(p.detach().numpy().astype(np.float64) * p.grad.numpy())

    w, b = s(attn.c_attn.weight), s(attn.c_attn.bias)
    h, i = 3, 5
    q, k = h * 8 + i, 32 + h * 8 + i
    assert qk[h, i] == pytest.approx(w[q].sum() + b[q] + w[k].sum() + b[k])
    assert v[h, i] == pytest.approx(w[64 + h * 8 + i].sum() + b[64 + h * 8 + i]
                                    + s(attn.c_proj.weight)[:, h * 8 + i].sum())
    top = keep_top_dims(np.array([[0.1, 3, 2, 0.5], [4, 0, 0, 1]]), 2)
    np.testing.assert_array_equal(top, [[1, 2], [0, 3]])


def test_removing_a_block_is_skipping_it():
    src = PrunableGPT.from_gpt(_gpt())

    def identity_block(state):  # block 1 adds nothing to the stream
        for name in ("attn.c_proj", "mlp.c_proj"):
            state[f"transformer.h.1.{name}.weight"][:] = 0
            state[f"transformer.h.1.{name}.bias"][:] = 0

    reference = _copy_with(src, identity_block)
    prune_layer(reference, 2, heads=[1, 3])  # per-layer sizes follow the kept blocks
    pruned = _copy_with(reference, lambda s: None)
    prune_blocks(pruned, [0, 2])
    assert pruned.config.n_layer == len(pruned.transformer.h) == 2 and pruned.config.layer_heads == [4, 2]
    idx = _idx()
    np.testing.assert_allclose(_logits(pruned, idx), _logits(reference, idx), rtol=1e-5, atol=1e-6)
    ids = generate(pruned, [[4, 5]], 5, temperature=0.0)
    assert ids == generate(reference, [[4, 5]], 5, temperature=0.0)
    # the layer importance 1 - cos ranks the identity block last, so one-shot depth pruning drops it
    imp = layer_importance(reference, [(idx, None)])
    assert imp[1] == pytest.approx(0.0, abs=1e-6) and imp.argmin() == 1
    n = reference.num_parameters() - 200
    one_shot = magnitude_prune(_copy_with(reference, lambda s: None), n, layers=2, batches=[(idx, None)])
    assert one_shot.config.n_layer == 2 and one_shot.config.layer_heads[1] <= 2


_READERS = re.compile(r"(wte|wpe|c_attn|c_fc|lm_head)\.weight$")  # residual channels are their columns
_WRITERS = re.compile(r"(c_proj\.(weight|bias)|ln_\w+\.(weight|bias))$")  # ... their rows / entries


def test_width_pruning_slices_every_weight_that_has_the_channel():
    src = PrunableGPT.from_gpt(_gpt(tie_word_embeddings=False))
    keep = np.array([0, 3, 4, 8, 9, 13, 17, 18, 21, 22, 25, 26, 28, 29, 30, 31, 1, 2])
    expected = {}
    for name, w in src.state_dict().items():
        w = w.numpy()
        expected[name] = (w[:, np.sort(keep)] if _READERS.search(name) else w[np.sort(keep)]
                          if _WRITERS.search(name) else w)
    pruned = PrunableGPT.from_gpt(_gpt(tie_word_embeddings=False))
    prune_width(pruned, keep)
    assert pruned.config.n_embd == 18 and pruned.config.n_inner == 128 and pruned.config.head_size == 8
    got = {k: v.numpy() for k, v in pruned.state_dict().items()}
    assert got.keys() == expected.keys()
    for name in got:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    # the same weights in a model built at width 18 compute the same logits, and it still trains
    built = PrunableGPT(PrunableGPTConfig(**pruned.config.to_dict()))
    built.load_state_dict({k: tinyml.tensor(v) for k, v in expected.items()})
    idx = _idx()
    np.testing.assert_array_equal(_logits(pruned, idx), _logits(built, idx))
    pruned.train()
    loss = pruned(idx, _idx(seed=1))[1]
    loss.backward()
    assert math.isfinite(loss.item()) and pruned.transformer.ln_f.weight.grad.shape == (18,)
    scores = width_scores(pruned)
    assert scores.shape == (18,) and (scores > 0).all()


def test_every_axis_saves_and_loads_with_the_same_logits(tmp_path):
    model = PrunableGPT.from_gpt(_gpt())
    prune_blocks(model, [0, 2])
    prune_width(model, np.arange(0, 32, 2)[:13])  # 13 is not a multiple of the 4 heads: allowed here
    prune_head_dims(model, 1, [q[:3] for q in QK], [v[:3] for v in VD])
    prune_layer(model, 0, heads=[0, 2, 3], channels=list(range(0, 128, 3)))
    save_pruned(model, str(tmp_path / "m"))
    for loaded in (PrunableGPT.from_pretrained(str(tmp_path / "m")), from_pretrained(str(tmp_path / "m")),
                   load_pruned(str(tmp_path / "m"))):
        assert isinstance(loaded, PrunableGPT)
        c = loaded.config
        assert (c.n_layer, c.n_embd, c.layer_heads, c.layer_head_dim, c.layer_inner) == (
            2, 13, [3, 4], [8, 3], [43, 128])
        np.testing.assert_array_equal(_logits(loaded, _idx()), _logits(model, _idx()))
    assert param_count(model.config, 13, [(3, 43, 8), (4, 128, 3)]) == model.num_parameters()
    assert isinstance(GPT.from_pretrained(str(tmp_path / "m")), PrunableGPT)  # a PrunableGPT is a GPT


@pytest.mark.parametrize("kw", [dict(), dict(bias=False), dict(tie_word_embeddings=False),
                                dict(qk_layernorm=True)])
def test_param_count_matches_the_model(kw):
    model = PrunableGPT.from_gpt(_gpt(**kw))
    prune_layer(model, 1, heads=[0], channels=[4, 5])
    c = model.config
    sizes = list(zip(c.layer_heads, c.layer_inner, c.layer_head_dim))
    assert param_count(c, c.n_embd, sizes) == model.num_parameters()


def test_adam_moments_follow_width_and_head_dims():
    model = PrunableGPT.from_gpt(_gpt())
    opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3)
    model(_idx(), _idx(seed=1))[1].backward()
    opt.step()
    old = {n: opt.state[p]["exp_avg"].numpy().copy() for n, p in model.named_parameters()}
    states = {id(p): (p, s) for p, s in opt.state.items()}
    keep = np.arange(5, 29)
    prune_width(model, keep, states)
    prune_head_dims(model, 2, QK, VD, states)
    params = dict(model.named_parameters())
    assert all(id(p) in states for p in params.values())
    np.testing.assert_array_equal(states[id(params["transformer.wte.weight"])][1]["exp_avg"].numpy(),
                                  old["transformer.wte.weight"][:, keep])
    np.testing.assert_array_equal(states[id(params["transformer.h.0.ln_2.bias"])][1]["exp_avg"].numpy(),
                                  old["transformer.h.0.ln_2.bias"][keep])
    v_rows = 64 + 2 * 8 + np.array(VD[2])  # head 2's kept value rows, now rows 32 + 8.. of c_attn
    np.testing.assert_array_equal(
        states[id(params["transformer.h.2.attn.c_attn.weight"])][1]["exp_avg"].numpy()[32 + 8: 32 + 12],
        old["transformer.h.2.attn.c_attn.weight"][v_rows][:, keep])


def test_adapt_prune_and_one_shot_reach_every_axis_target():
    gpt = _gpt()
    target = 9_000
    cfg = AdaptPruneConfig(target_params=target, steps=24, rounds=3, warmup_steps=2, lr=3e-3,
                           schedule="geometric", target_layers=2, target_embd=24, target_head_dim=4)
    pruned, history = adapt_prune(gpt, Batches(), cfg)
    c = pruned.config
    assert (c.n_layer, c.n_embd, set(c.layer_head_dim)) == (2, 24, {4})
    assert 0.97 * target <= pruned.num_parameters() <= target
    # the axes move on the schedule: (3 -> 2 blocks, 32 -> 24 wide, 8 -> 4 dims) geometric in 3 rounds
    widths = [h["n_embd"] for h in history]
    assert widths == [axis_at(k, 3, 32, 24, "geometric") for k in (1, 2, 3)] == [29, 26, 24]
    assert [len(h["layer_heads"]) for h in history] == [3, 2, 2]
    assert [h["layer_head_dim"][0] for h in history] == [6, 5, 4]
    assert all(h["loss_after"] >= h["loss_before"] - 0.5 for h in history)
    x, y = Batches(seed=9).next_batch()
    with tinyml.no_grad():
        assert pruned.eval()(tinyml.tensor(x), tinyml.tensor(y))[1].item() < np.log(V) - 0.5  # it learned
    one_shot = magnitude_prune(gpt, target, layers=2, embd=24, head_dim=4, batches=[(_idx(), None)])
    c = one_shot.config
    assert (c.n_layer, c.n_embd, set(c.layer_head_dim)) == (2, 24, {4})
    assert 0.97 * target <= one_shot.num_parameters() <= target


def test_axis_targets_it_cannot_take_are_errors():
    model = PrunableGPT.from_gpt(_gpt())
    n = model.num_parameters()
    for kw, msg in ((dict(layers=4), "target_layers=4 is larger than the model's 3 layers"),
                    (dict(embd=40), r"target_embd=40 is larger than the model's 32 residual width"),
                    (dict(head_dim=9), "target_head_dim=9 is larger than the model's 8 head dims"),
                    (dict(layers=0), "target_layers must be a positive int, got 0")):
        with pytest.raises(ValueError, match=msg):
            check_target(model, n - 1, **kw)
    with pytest.raises(ValueError, match="below what structured pruning can reach at 1 layers, "
                                         "residual width 8 and head dim 2: 519 \\(432 in embeddings"):
        check_target(model, 300, layers=1, embd=8, head_dim=2)
    with pytest.raises(ValueError, match="larger than the model"):
        adapt_prune(_gpt(), Batches(), AdaptPruneConfig(target_params=n * 2, steps=4, rounds=2,
                                                        target_layers=2))
    with pytest.raises(ValueError, match="needs `batches` to rank the blocks"):
        magnitude_prune(_gpt(), 9_000, layers=2)
    with pytest.raises(ValueError, match="qk-layernorm"):
        prune_head_dims(PrunableGPT.from_gpt(_gpt(qk_layernorm=True)), 0, QK, VD)
    with pytest.raises(ValueError, match="muP model's residual width cannot be pruned"):
        prune_width(PrunableGPT.from_gpt(_gpt(mup=True)), [0, 1])
    with pytest.raises(ValueError, match="keeps 4 query/key dims and 3 value dims"):
        prune_head_dims(model, 0, QK, [v[:3] for v in VD])
    with pytest.raises(ValueError, match=r"keeps value dims \[\[0, 9\]\]; expected one row per head \(4\)"):
        prune_head_dims(model, 0, [[0, 1]] * 4, [[0, 9]])
    with pytest.raises(ValueError, match=r"prune_blocks keeps blocks \[0, 3\]; expected 1 to 3 distinct"):
        prune_blocks(model, [0, 3])
    with pytest.raises(ValueError, match=r"prune_width keeps residual channels \[1, 1\]; expected 1 to 32"):
        prune_width(model, [1, 1])
    with pytest.raises(ValueError, match="layer_head_dim must hold ints in 1..8"):
        PrunableGPTConfig(n_layer=2, n_head=4, n_embd=32, layer_head_dim=[8, 9])
