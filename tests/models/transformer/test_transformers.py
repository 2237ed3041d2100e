"""tinyml's transformer models: shapes, options (GQA, qk-layernorm, z-loss, tying), gradients
against transformers, and generation (cached == uncached, sampling filters, stop tokens)."""
import numpy as np
import pytest
from tinyml.models import (
    GPT,
    BertConfig,
    BertForMaskedLM,
    GPTConfig,
    Llama,
    LlamaConfig,
    generate,
    sample_next,
)
from tinyml.models.transformer.generate import _probabilities

import tinyml


def tiny_gpt(**kw):
    return GPT(GPTConfig(**{**dict(vocab_size=37, block_size=24, n_layer=2, n_head=4, n_embd=32), **kw}))


def tiny_llama(**kw):
    return Llama(LlamaConfig(**{**dict(vocab_size=41, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=64), **kw}))


@pytest.mark.parametrize("make", [tiny_gpt, tiny_llama, lambda: tiny_gpt(qk_layernorm=True, z_loss=True),
                                  lambda: tiny_llama(qk_layernorm=True, z_loss=True,
                                                     tie_word_embeddings=True)])
def test_forward_backward_shapes(make):
    model = make()
    x = tinyml.randint(0, model.config.vocab_size, (3, 10))
    y = tinyml.randint(0, model.config.vocab_size, (3, 10))
    logits, loss = model(x, y)
    assert logits.shape == (3, 10, model.config.vocab_size)
    assert abs(loss.item() - np.log(model.config.vocab_size)) < 0.5  # near-uniform at init
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert model(x)[1] is None


def test_tied_embeddings_share_one_matrix():
    assert not hasattr(tiny_gpt(), "lm_head")
    assert hasattr(tiny_gpt(tie_word_embeddings=False), "lm_head")
    n_tied = sum(p.numel() for p in tiny_llama(tie_word_embeddings=True).parameters())
    n_untied = sum(p.numel() for p in tiny_llama().parameters())
    assert n_untied - n_tied == 41 * 32


def test_z_loss_adds_mean_squared_logsumexp():
    tinyml.manual_seed(3)
    plain = tiny_gpt()
    zl = tiny_gpt(z_loss=True)
    zl.load_state_dict(plain.state_dict())
    x = tinyml.randint(0, 37, (2, 8))
    logits, base = plain(x, x)
    _, with_z = zl(x, x)
    lg = logits.detach().numpy().astype(np.float64)
    m = lg.max(-1, keepdims=True)
    lse = (m[..., 0] + np.log(np.exp(lg - m).sum(-1)))
    assert with_z.item() == pytest.approx(base.item() + 1e-4 * (lse ** 2).mean(), rel=1e-5)


def test_qk_layernorm_adds_head_dim_norms():
    names = [n for n, _ in tiny_gpt(qk_layernorm=True).named_parameters()]
    assert "transformer.h.0.attn.q_norm.weight" in names and "transformer.h.1.attn.k_norm.bias" in names
    names = [n for n, _ in tiny_llama(qk_layernorm=True).named_parameters()]
    assert "model.layers.0.self_attn.q_norm.weight" in names
    with pytest.raises(ValueError, match="no qk-layernorm"):
        tiny_gpt(qk_layernorm=True).save_pretrained("/nonexistent")


def test_config_errors():
    with pytest.raises(ValueError, match=r"n_embd \(30\) must be divisible by n_head \(4\)"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="longer than the model's block_size 24"):
        tiny_gpt()(tinyml.zeros(1, 25, dtype=tinyml.int64))


def test_gradients_match_transformers():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import tempfile

    from tinyml.models import from_pretrained

    cfg = transformers.LlamaConfig(vocab_size=31, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, bos_token_id=0,
                                   eos_token_id=1)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        model = from_pretrained(d)
    ids = np.random.default_rng(0).integers(0, 31, size=(2, 9))
    x, y = ids[:, :-1], ids[:, 1:]
    out = hf(torch.tensor(x)).logits
    torch.nn.functional.cross_entropy(out.reshape(-1, 31), torch.tensor(y).reshape(-1)).backward()
    _, loss = model(tinyml.tensor(x), tinyml.tensor(y))
    loss.backward()
    hf_grads = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), hf_grads[name].grad.numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)


def test_bert_mlm_loss_ignores_minus_100():
    model = BertForMaskedLM(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2,
                                       intermediate_size=32, max_position_embeddings=16))
    ids = tinyml.randint(0, 30, (2, 8))
    labels = np.full((2, 8), -100)
    labels[0, 3], labels[1, 5] = 7, 11
    logits, loss = model(ids, labels=tinyml.tensor(labels))
    lg = logits.detach().numpy().astype(np.float64)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    assert loss.item() == pytest.approx(-(logp[0, 3, 7] + logp[1, 5, 11]) / 2, rel=1e-5)


@pytest.mark.parametrize("make", [tiny_gpt, tiny_llama])
@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=0.9, top_k=10, top_p=0.9)])
def test_cached_generation_equals_uncached(make, sampling):
    model = make()
    prompt = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]]
    tinyml.manual_seed(7)
    cached = generate(model, prompt, 12, use_cache=True, **sampling)
    tinyml.manual_seed(7)
    uncached = generate(model, prompt, 12, use_cache=False, **sampling)
    assert cached == uncached
    assert all(len(r) == 17 for r in cached) and cached[0][:5] == prompt[0]


@pytest.mark.parametrize("make", [tiny_gpt, tiny_llama])
def test_cached_logits_equal_uncached_in_every_layer(make):
    # weights large enough that positions matter: a layer reading another layer's cache length as its
    # position offset (Llama did) shifts its rotary angles, which near-init weights hide from argmax
    model = make().eval()
    rng = np.random.default_rng(0)
    with tinyml.no_grad():
        for p in model.parameters():
            p.copy_(tinyml.tensor(rng.standard_normal(p.shape).astype(np.float32) * 0.3))
    ids = rng.integers(0, model.config.vocab_size, size=(2, 12))
    with tinyml.no_grad():
        full = model(tinyml.tensor(ids))[0].numpy()
        cache = model.new_cache()
        parts = [model(tinyml.tensor(ids[:, :7]), cache=cache)[0].numpy()]
        parts += [model(tinyml.tensor(ids[:, t:t + 1]), cache=cache)[0].numpy() for t in range(7, 12)]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-4)


def test_generation_past_the_context_window():
    model = tiny_gpt(block_size=8)
    a = generate(model, [1, 2, 3], 12, temperature=0)
    b = generate(model, [1, 2, 3], 12, temperature=0, use_cache=False)
    assert a == b and len(a[0]) == 15


def test_stop_tokens_end_each_row():
    model = tiny_gpt()
    free = generate(model, [[1, 2], [3, 4]], 10, temperature=0)
    stop = free[0][2]  # row 0's first generated token
    out = generate(model, [[1, 2], [3, 4]], 10, temperature=0, stop_tokens=[stop])
    assert out[0] == free[0][:3]  # ends at the stop token, which is kept
    j = next((i for i, t in enumerate(free[1]) if i >= 2 and t == stop), None)
    assert out[1] == (free[1] if j is None else free[1][:j + 1])


def test_sampling_filters():
    logits = np.log(np.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    p = _probabilities(logits, 1.0, top_k=2, top_p=None)
    np.testing.assert_allclose(p, [[0.5 / 0.7, 0.2 / 0.7, 0, 0, 0]])
    p = _probabilities(logits, 1.0, top_k=None, top_p=0.8)  # 0.5 + 0.2 < 0.8, so 0.15 is needed too
    np.testing.assert_allclose(p, [[0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0]])
    p = _probabilities(logits, 1.0, top_k=None, top_p=0.1)  # the most likely token always survives
    np.testing.assert_allclose(p, [[1, 0, 0, 0, 0]])
    assert sample_next(logits, temperature=0).tolist() == [0]
    rng = np.random.default_rng(0)
    draws = np.array([sample_next(logits, 1.0, top_k=3, rng=rng)[0] for _ in range(3000)])
    assert set(draws) == {0, 1, 2}
    assert abs((draws == 0).mean() - 0.5 / 0.85) < 0.03
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, temperature=-1)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            sample_next(logits, temperature=bad)
    with pytest.raises(ValueError, match="top_k"):
        sample_next(logits, top_k=-1)


def test_autocast_bf16_forward_keeps_a_float32_loss():
    model = tiny_gpt()
    x = tinyml.randint(0, 37, (2, 8))
    _, ref = model(x, x)
    with tinyml.autocast("cpu", dtype=tinyml.bfloat16):
        logits, loss = model(x, x)
    assert loss.dtype == tinyml.float32
    assert abs(loss.item() - ref.item()) < 0.05
    loss.backward()
    assert model.transformer.wte.weight.grad.dtype == tinyml.float32


def test_mask_tokens_80_10_10():
    from tinyml.models import mask_tokens

    ids = np.random.default_rng(0).integers(5, 100, size=(200, 100))
    ids[:, 0] = 2  # a special token ([CLS]) that is never masked
    inputs, labels = mask_tokens(ids, mask_token_id=4, vocab_size=100, special_ids=(2,),
                                 rng=np.random.default_rng(1))
    chosen = labels != -100
    assert not chosen[:, 0].any()
    assert abs(chosen[:, 1:].mean() - 0.15) < 0.01
    np.testing.assert_array_equal(labels[chosen], ids[chosen])
    assert (inputs[~chosen] == ids[~chosen]).all()
    masked = (inputs[chosen] == 4).mean()
    kept = (inputs[chosen] == ids[chosen]).mean()
    # 10% kept + 10% swapped to itself (1 in 100)
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.101) < 0.02
