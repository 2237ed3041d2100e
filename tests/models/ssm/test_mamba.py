"""MambaLM on its own: cached generation equals the full forward, the cache has a constant size, left
and right padding leave the states and the real positions' logits untouched, the fused conv equals
conv1d and the cached steps train, the initialisation, parameter groups, a learning check and the errors."""
import numpy as np
import pytest
from tinyml.models import MambaConfig, MambaLM, generate
from tinyml.models.ssm.mamba import causal_conv1d_silu

import tinyml
import tinyml.nn.functional as F
from tinyml.optim.param_groups import param_groups
from tinyml.testing import assert_close

CFG = dict(vocab_size=30, d_model=16, n_layer=2, d_state=4, d_conv=3)


def model(**kw):
    tinyml.manual_seed(0)
    m = MambaLM(MambaConfig(**{**CFG, **kw})).eval()
    with tinyml.no_grad():  # zero conv biases and D = 1 at init: perturb so that they matter
        for name, p in m.named_parameters():
            if name.endswith(("conv1d.bias", "mixer.D")):
                p.add_(0.3 * tinyml.randn(*p.shape))
    return m


IDS = np.random.default_rng(0).integers(0, 30, (3, 12))


def test_cached_steps_equal_the_full_forward():
    m = model()
    with tinyml.no_grad():
        full, _ = m(tinyml.tensor(IDS))
        cache = m.new_cache()
        first, _ = m(tinyml.tensor(IDS[:, :5]), cache=cache)
        steps = [first] + [m(tinyml.tensor(IDS[:, t:t + 1]), cache=cache)[0] for t in range(5, 12)]
        several, _ = m(tinyml.tensor(IDS[:, :5]), cache=(c2 := m.new_cache()))
        rest, _ = m(tinyml.tensor(IDS[:, 5:]), cache=c2)  # several tokens on a warm cache: the recurrence
    assert_close(tinyml.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
    assert_close(rest, full[:, 5:], rtol=1e-4, atol=1e-5)
    assert cache.seq_len == 12
    tinyml.manual_seed(1)
    cached = generate(m, IDS[:, :4], 15, temperature=0)
    assert cached == generate(m, IDS[:, :4], 15, temperature=0, use_cache=False)


def test_cache_has_a_constant_size():
    m = model()
    with tinyml.no_grad():
        cache = m.new_cache()
        m(tinyml.tensor(IDS[:, :3]), cache=cache)
        shapes = [(tuple(c.shape), tuple(s.shape)) for c, s in zip(cache.conv_states, cache.ssm_states)]
        for t in range(20):
            m(tinyml.tensor(IDS[:, :1]), cache=cache)
    assert shapes == [(tuple(c.shape), tuple(s.shape)) for c, s in zip(cache.conv_states, cache.ssm_states)]
    assert shapes[0] == ((3, 32, 2), (3, 32, 4))  # (B, d_inner, d_conv - 1), (B, d_inner, d_state)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_does_not_move_the_state(side):
    """Row 0 is 7 tokens padded to 12; row 1 is 12 tokens. Real positions' logits and the states after
    each row's last token equal those of the unpadded rows run alone, and so does the next step."""
    m = model()
    short = IDS[0, :7]
    pad = np.full(5, 29)  # a real token id: only the mask says it is padding
    padded = np.stack([np.concatenate([pad, short] if side == "left" else [short, pad]), IDS[1]])
    mask = np.ones_like(padded)
    mask[0, slice(0, 5) if side == "left" else slice(7, 12)] = 0
    real = slice(5, 12) if side == "left" else slice(0, 7)
    with tinyml.no_grad():
        cache = m.new_cache()
        logits, _ = m(tinyml.tensor(padded), cache=cache, attention_mask=tinyml.tensor(mask))
        alone_cache = m.new_cache()
        alone, _ = m(tinyml.tensor(short[None]), cache=alone_cache)
        assert_close(logits[0, real], alone[0], rtol=1e-4, atol=1e-5)
        assert_close(logits[1], m(tinyml.tensor(IDS[1:2]))[0][0], rtol=1e-4, atol=1e-5)
        for layer in range(2):
            assert_close(cache.ssm_states[layer][0], alone_cache.ssm_states[layer][0], rtol=1e-4, atol=1e-6)
            assert_close(cache.conv_states[layer][0], alone_cache.conv_states[layer][0], rtol=1e-5, atol=1e-6)
        nxt = np.array([[3], [4]])
        step, _ = m(tinyml.tensor(nxt), cache=cache)
        assert_close(step[0], m(tinyml.tensor(nxt[:1]), cache=alone_cache)[0][0], rtol=1e-4, atol=1e-5)


def test_gradients_flow_through_a_padded_batch():
    m = model().train()
    mask = np.ones_like(IDS)
    mask[0, :4] = 0
    _, loss = m(tinyml.tensor(IDS[:, :-1]), tinyml.tensor(IDS[:, 1:]),
                attention_mask=tinyml.tensor(mask[:, :-1]))
    loss.backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in m.parameters())


def test_fused_conv_equals_conv1d_and_cached_steps_train():
    """The fused conv is F.conv1d's; the cached steps (causal_conv1d_update, selective_state_update)
    equal the full forward with grad enabled too, and their gradients reach every mixer weight."""
    x, w, b = tinyml.randn(2, 5, 9), tinyml.randn(5, 3), tinyml.randn(5)
    want = F.silu(F.conv1d(F.pad(x, (2, 0)), w.unsqueeze(1), b, groups=5))
    assert_close(causal_conv1d_silu(x, w, b), want, kind="reduction")
    m = model()
    full, _ = m(tinyml.tensor(IDS))
    cache = m.new_cache()
    steps = [m(tinyml.tensor(IDS[:, :6]), cache=cache)[0]]
    steps += [m(tinyml.tensor(IDS[:, t:t + 1]), cache=cache)[0] for t in range(6, 12)]
    logits = tinyml.cat(steps, 1)
    assert_close(logits, full, rtol=1e-4, atol=1e-5)
    logits[:, 6:].sum().backward()
    mixer = m.backbone.layers[0].mixer
    for p in (mixer.A_log, mixer.D, mixer.dt_proj.bias, mixer.x_proj.weight, mixer.conv1d.weight):
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all() and np.abs(p.grad.numpy()).sum() > 0


def test_initialisation_and_parameter_groups():
    cfg = MambaConfig(**CFG)
    m = MambaLM(cfg)
    mixer = m.backbone.layers[0].mixer
    assert_close(mixer.A_log.detach().exp()[3], np.arange(1, 5, dtype=np.float32))
    dt = np.log1p(np.exp(mixer.dt_proj.bias.detach().numpy()))  # softplus(bias) = the sampled dt
    assert (dt >= cfg.dt_min * 0.999).all() and (dt <= cfg.dt_max * 1.001).all()
    assert cfg.dt_rank == 1 and mixer.x_proj.weight.shape == (1 + 2 * 4, 32)
    groups = param_groups(m, lr=1e-3, weight_decay=0.1)
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert id(mixer.A_log) in no_decay and id(mixer.D) in no_decay
    assert id(mixer.in_proj.weight) not in no_decay


def test_learns_a_periodic_sequence():
    tinyml.manual_seed(0)
    m = MambaLM(MambaConfig(vocab_size=8, d_model=16, n_layer=1, d_state=4))
    opt = tinyml.optim.AdamW(m.parameters(), lr=1e-2)
    seq = np.tile([1, 5, 2, 7, 3], 10)[None, :33]
    for _ in range(40):
        _, loss = m(tinyml.tensor(seq[:, :-1]), tinyml.tensor(seq[:, 1:]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5  # from log(8) = 2.08


def test_errors_name_the_values():
    m = model()
    with pytest.raises(ValueError, match=r"\(B, L\).*\(3,\)"):
        m(tinyml.tensor(IDS[:, 0]))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(3, 5\), expected \(B, L\) = \(3, 12\)"):
        m(tinyml.tensor(IDS), attention_mask=tinyml.ones(3, 5))
    with pytest.raises(ValueError, match=r"d_model=16\), got \(3, 12, 8\)"):
        m.backbone.layers[0].mixer(tinyml.randn(3, 12, 8))
    with tinyml.no_grad():
        cache = m.new_cache()
        m(tinyml.tensor(IDS[:, :4]), cache=cache)
        with pytest.raises(ValueError, match=r"padding .*shape \(3, 1\).*empty cache"):
            m(tinyml.tensor(IDS[:, 4:5]), cache=cache, attention_mask=tinyml.zeros(3, 1))
    with pytest.raises(ValueError, match="d_state must be a positive int, got 0"):
        MambaConfig(d_state=0)
    with pytest.raises(ValueError, match="dt_init.*'log'"):
        MambaConfig(dt_init="log")
