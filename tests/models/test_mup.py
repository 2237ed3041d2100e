"""muP (models/transformer/mup.py) in the GPT and Llama: the width-scaled init, the output multiplier
and the attention scale (checked by folding them into the weights of a standard model, which must then
give the same logits), the per-layer learning rates through optim_hints, the coordinate check (flat in
width with muP, growing without), `tinyml sweep --mup`, and the one-line errors."""
import json

import numpy as np
import pytest
from tinyml.models import GPT, GPTConfig, Llama, LlamaConfig
from tinyml.models.transformer.mup import coord_check, hidden_linears, set_mup_lr_hints, width_mult
from tinyml.train.cli import main
from tinyml.train.trainer import TrainConfig, Trainer

import tinyml
from tinyml.optim.param_groups import param_groups


def _gpt(width, mup, base=32, **kw):
    tinyml.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=width, mup=mup,
                         mup_base_width=base if mup else None, **kw))


def _llama(width, mup, base=32):
    tinyml.manual_seed(0)
    return Llama(LlamaConfig(vocab_size=50, hidden_size=width, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=32, mup=mup,
                             mup_base_width=base if mup else None))


def _idx(vocab=50, shape=(2, 12), seed=0):
    return tinyml.tensor(np.random.default_rng(seed).integers(0, vocab, shape))


def _logits(model, idx):
    with tinyml.no_grad():
        return model(idx)[0].numpy()


def test_mup_at_base_width_is_the_standard_model():
    idx = _idx()
    for make in (_gpt, _llama):
        sp, mup = make(32, False), make(32, True)
        assert width_mult(mup) == 1.0
        for (n, a), (_, b) in zip(sp.state_dict().items(), mup.state_dict().items()):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=n)
        np.testing.assert_allclose(_logits(mup, idx), _logits(sp, idx), rtol=1e-5, atol=1e-6)


def test_hidden_init_shrinks_as_one_over_sqrt_width_mult():
    sp, mup = _gpt(128, False), _gpt(128, True, base=32)  # m = 4: hidden weights at half the std
    assert width_mult(mup) == 4.0
    names = {n for n, _ in hidden_linears(mup)}
    assert names == {f"transformer.h.{i}.{m}" for i in range(2)
                     for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    s_sp, s_mup = sp.state_dict(), mup.state_dict()
    for name in s_sp:
        a, b = s_sp[name].numpy(), s_mup[name].numpy()
        if name.removesuffix(".weight") in names:
            np.testing.assert_allclose(b, a * 0.5, rtol=1e-6)
        else:  # embeddings, norms, biases: as in the standard model
            np.testing.assert_array_equal(a, b, err_msg=name)


def _fold_gpt(mup_model, m):
    """A standard GPT with muP's attention scale folded into the query weights (and the query
    LayerNorm when there is one) and the output multiplier into an untied head."""
    cfg = mup_model.config
    sp = GPT(GPTConfig(**{**cfg.to_dict(), "mup": False, "mup_base_width": None}))
    state = {k: v.numpy().copy() for k, v in mup_model.state_dict().items()}
    q_mult = mup_model.transformer.h[0].attn.attn_scale * (cfg.n_embd // cfg.n_head) ** 0.5
    for i in range(cfg.n_layer):
        pre = f"transformer.h.{i}.attn."
        if cfg.qk_layernorm:
            state[pre + "q_norm.weight"] *= q_mult
            state[pre + "q_norm.bias"] *= q_mult
        else:
            state[pre + "c_attn.weight"][:cfg.n_embd] *= q_mult
            state[pre + "c_attn.bias"][:cfg.n_embd] *= q_mult
    state["lm_head.weight"] /= m
    sp.load_state_dict({k: tinyml.tensor(v) for k, v in state.items()})
    return sp


@pytest.mark.parametrize("qk_layernorm", [False, True])  # the packed attention path, then attend's
def test_gpt_output_multiplier_and_attention_scale(qk_layernorm):
    mup = _gpt(128, True, base=32, tie_word_embeddings=False, qk_layernorm=qk_layernorm)
    attn = mup.transformer.h[0].attn
    assert attn.attn_scale == pytest.approx(np.sqrt(32 / 4) / 32)  # sqrt(d_base) / d, d = 32, d_base = 8
    idx, targets = _idx(), _idx(seed=1)
    folded = _fold_gpt(mup, 4.0)
    np.testing.assert_allclose(_logits(mup, idx), _logits(folded, idx), rtol=1e-4, atol=1e-6)
    for m in (mup, folded):  # the same function of the embeddings: the same gradient through the scales
        m(idx, targets)[1].backward()
    np.testing.assert_allclose(mup.transformer.wte.weight.grad.numpy(),
                               folded.transformer.wte.weight.grad.numpy(), rtol=1e-3, atol=1e-7)


def test_llama_output_multiplier_and_attention_scale():
    mup = _llama(128, True, base=32)
    cfg = mup.config
    sp = Llama(LlamaConfig(**{**cfg.to_dict(), "mup": False, "mup_base_width": None}))
    state = {k: v.numpy().copy() for k, v in mup.state_dict().items()}
    q_mult = mup.model.layers[0].self_attn.q_mult  # rotary is linear in q: the scale folds into q_proj
    assert q_mult == pytest.approx(0.5)
    for i in range(cfg.num_hidden_layers):
        state[f"model.layers.{i}.self_attn.q_proj.weight"] *= q_mult
    state["lm_head.weight"] /= 4.0
    sp.load_state_dict({k: tinyml.tensor(v) for k, v in state.items()})
    idx = _idx()
    np.testing.assert_allclose(_logits(mup, idx), _logits(sp, idx), rtol=1e-4, atol=1e-6)


def test_mup_learning_rates_go_through_optim_hints_and_the_trainer():
    model = _gpt(128, True, base=32)
    set_mup_lr_hints(model, 1e-2)
    hidden = {id(m.weight) for _, m in hidden_linears(model)}
    groups = param_groups(model, 1e-2, 0.1)
    for g in groups:
        ids = {id(p) for p in g["params"]}
        if ids & hidden:
            assert ids == hidden and g["lr"] == pytest.approx(2.5e-3) and g["lr_scale"] == pytest.approx(0.25)
            assert g["weight_decay"] == 0.1
        else:
            assert g["lr"] == 1e-2
    batch = (_idx(shape=(2, 16)), _idx(shape=(2, 16), seed=1))
    trainer = Trainer(model, [batch], None, TrainConfig(max_steps=3, lr=1e-2, warmup_steps=0, progress=False,
                                                        log_interval=10, eval_interval=10))
    trainer.fit()
    rates = {len(g["params"]): g["lr"] for g in trainer.optimizer.param_groups}
    base_rate = rates[max(rates, key=lambda n: rates[n])]
    assert base_rate < 1e-2  # the cosine schedule has moved the rate ...
    assert rates[len(hidden)] == pytest.approx(0.25 * base_rate)  # ... and the hidden group kept its ratio
    # a standard model, or muP at its base width, gets no hints
    sp = _gpt(128, False)
    set_mup_lr_hints(sp, 1e-2)
    assert all(not hasattr(m, "optim_hints") for _, m in hidden_linears(sp))


@pytest.mark.parametrize("width, base, scale", [(128, 32, 0.25), (32, 64, 2.0)])
def test_mup_lr_scale_lowers_or_raises_the_hidden_rate_under_the_schedule(width, base, scale):
    """The hint is a multiplier (lr_scale = base / width): below lr for a model wider than its base,
    above it for a narrower one, at every step of the Trainer's warmup and cosine schedule."""
    model = _gpt(width, True, base=base)
    set_mup_lr_hints(model)  # no lr needed: the multiplier holds for any peak rate
    hidden = {id(m.weight) for _, m in hidden_linears(model)}
    trainer = Trainer(model, [(_idx(shape=(2, 16)), _idx(shape=(2, 16), seed=1))], None,
                      TrainConfig(max_steps=4, lr=1e-2, warmup_steps=2, progress=False, log_interval=10,
                                  eval_interval=10))
    groups = trainer.optimizer.param_groups
    (hidden_group,) = [g for g in groups if {id(p) for p in g["params"]} & hidden]
    assert {id(p) for p in hidden_group["params"]} == hidden
    assert hidden_group["lr_scale"] == pytest.approx(scale)
    others = [g for g in groups if g is not hidden_group]
    rates = []
    for _ in range(3):
        trainer.train_step()
        assert all(g["lr"] == others[0]["lr"] for g in others)
        assert hidden_group["lr"] == pytest.approx(scale * others[0]["lr"])
        rates.append(others[0]["lr"])
    assert len(set(rates)) == 3  # the schedule did move the rate (warmup peak, then the cosine)


def test_coord_check_is_flat_with_mup_and_grows_without():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 50, (2, 4, 17))
    batches = [(tinyml.tensor(d[:, :-1]), tinyml.tensor(d[:, 1:])) for d in data]
    widths = [32, 128]
    sp = coord_check(lambda w: _gpt(w, False), widths, batches, lr=1e-2, steps=3)
    mup = coord_check(lambda w: _gpt(w, True, base=32), widths, batches, lr=1e-2, steps=3)
    assert sp["layers"] == ["wte", "h.0", "h.1", "logits"] and sp["rms"].shape == (3, 4, 2)
    np.testing.assert_allclose(sp["rms"][0, :, 0], mup["rms"][0, :, 0], rtol=1e-5)  # m = 1: the same model
    growth_sp = sp["rms"][-1, 1:, 1] / sp["rms"][-1, 1:, 0]   # blocks and logits, 4x the width, after 2 steps
    growth_mup = mup["rms"][-1, 1:, 1] / mup["rms"][-1, 1:, 0]
    assert (growth_sp > 1.8).all(), growth_sp
    assert (growth_mup < 1.3).all() and (growth_mup > 0.5).all(), growth_mup


def test_errors_name_the_values(tmp_path):
    with pytest.raises(ValueError, match="mup_base_width must be a positive int, got 0"):
        GPTConfig(n_embd=64, mup=True, mup_base_width=0)
    with pytest.raises(ValueError, match="mup_base_width=32 is set but mup is False"):
        LlamaConfig(hidden_size=64, mup_base_width=32)
    narrow = _gpt(32, True, base=64)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got -1"):
        set_mup_lr_hints(narrow, -1)
    with pytest.raises(ValueError, match="GPT2 has no muP"):
        _gpt(64, True).save_pretrained(str(tmp_path / "gpt"))
    with pytest.raises(ValueError, match="Llama has no muP"):
        _llama(64, True).save_pretrained(str(tmp_path / "llama"))


TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20


def test_sweep_mup_flag(tmp_path, capsys):
    (tmp_path / "tiny.txt").write_text(TEXT)
    common = ["sweep", "--data", str(tmp_path / "tiny.txt"), "--lr", "1e-3..1e-2", "--points", "2",
              "--steps", "2", "--batch-size", "2", "--eval-iters", "1", "--device", "cpu",
              "--out", str(tmp_path / "out")]
    assert main([*common, "--mup", "--width", "64", "--mup-base-width", "32"]) == 0
    res = json.loads((tmp_path / "out" / "sweep-muP-base-32+width-64.json").read_text())
    assert res["mup"] is True and res["model"]["mup"] is True
    assert res["model"]["n_embd"] == 64 and res["model"]["mup_base_width"] == 32
    assert all(not r["diverged"] for r in res["runs"])
    # a base wider than the model: its hidden matrices train above --lr (lr_scale 4)
    assert main([*common, "--mup", "--width", "32", "--mup-base-width", "128"]) == 0
    res = json.loads((tmp_path / "out" / "sweep-muP-base-128+width-32.json").read_text())
    assert res["model"]["mup_base_width"] == 128 and all(not r["diverged"] for r in res["runs"])
    for flags, why in ((["--mup-base-width", "64"], "--mup-base-width 64 needs --mup"),
                       (["--width", "130"], "--width 130 must be a multiple of the baby preset's 4 heads")):
        with pytest.raises(SystemExit) as e:
            main([*common, *flags])
        assert e.value.code == 2 and why in capsys.readouterr().err
