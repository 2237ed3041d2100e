"""Bottleneck adapters (SeqBn, DoubleSeqBn, SeqBnInv): placement written out by hand, invertibility,
switching, unloading and errors."""
import numpy as np
import pytest
from peft_helpers import bert, gpt, ids, llama, logits_of
from tinyml.models.peft import (
    BottleneckLayer,
    DoubleSeqBnConfig,
    LoraConfig,
    NICECoupling,
    SeqBnConfig,
    SeqBnInvConfig,
    get_peft_model,
)

import tinyml
import tinyml.nn as nn
import tinyml.nn.functional as F


def _shake(model, std=0.3):
    """Make every adapter's up-projection large enough that a misplaced adapter shows."""
    rng = np.random.default_rng(3)
    with tinyml.no_grad():
        for name, p in model.named_parameters():
            if "adapter_up" in name:
                p.copy_(tinyml.tensor(rng.normal(0, std, p.shape), dtype=p.dtype))


def _gpt_by_hand(model, idx, double: bool):
    """GPT's forward written out with the adapters where adapters' configs put them."""
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(tinyml.arange(idx.shape[1]))
    for block in tr.h:
        if double:  # Houlsby: s -> s + adapter(s) for each sublayer output, then the residual add
            a = block.attn.forward(block.ln_1(x))
            x = x + a + block.attn.bottleneck.adapter["default"](a)
            m = block.mlp.forward(block.ln_2(x))
            x = x + m + block.mlp.bottleneck.adapter["default"](m)
        else:  # Pfeiffer: y -> y + adapter(y) on the block output
            y = block.forward(x)
            x = y + block.bottleneck.adapter["default"](y)
    return F.linear(tr.ln_f(x), tr.wte.weight)


@pytest.mark.parametrize("double", [False, True])
def test_gpt_placement_matches_the_adapters_library_rules(double):
    model = get_peft_model(gpt(), DoubleSeqBnConfig() if double else SeqBnConfig())
    _shake(model)
    idx = ids(model)
    with tinyml.no_grad():
        expected = _gpt_by_hand(model.base_model, idx, double).numpy()
    np.testing.assert_allclose(logits_of(model, idx), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("double", [False, True])
def test_bert_placement_matches_the_adapters_library_rules(double):
    model = get_peft_model(bert(), DoubleSeqBnConfig() if double else SeqBnConfig())
    _shake(model)
    idx = ids(model)
    m = model.base_model
    with tinyml.no_grad():
        x = m.bert.embeddings(idx)
        for layer in m.bert.encoder.layer:
            att = layer.attention
            s = att.output.dropout.forward(att.output.dense(att.self(x)))  # forward: skip the hooks
            if double:
                s = s + att.output.bottleneck.adapter["default"](s)
            x = att.output.LayerNorm(s + x)
            out = layer.output
            h = out.dropout.forward(out.dense(layer.intermediate(x)))
            if double:  # h -> h + adapter(h) before the residual and LN
                x = out.LayerNorm(h + out.bottleneck.adapter["default"](h) + x)
            else:  # SeqBn: LN(h + a + adapter(LN(h + a))) with the layer's own LN
                y = out.LayerNorm(h + x)
                x = out.LayerNorm(h + x + out.bottleneck.adapter["default"](y))
        head = m.cls.predictions
        expected = F.linear(head.transform(x), m.bert.embeddings.word_embeddings.weight, head.bias).numpy()
    np.testing.assert_allclose(logits_of(model, idx), expected, rtol=1e-5, atol=1e-5)


def test_default_sizes_and_activations():
    model = get_peft_model(llama(), SeqBnConfig())
    holder = model.base_model.model.layers[0].bottleneck
    assert isinstance(holder, BottleneckLayer)
    adapter = holder.adapter["default"]
    assert (adapter.adapter_down.in_features, adapter.adapter_down.out_features) == (32, 2)  # 32 / 16
    assert adapter.act is F.relu and DoubleSeqBnConfig().non_linearity == "swish"
    trainable, _ = model.get_nb_trainable_parameters()
    assert trainable == 2 * (32 * 2 + 2 + 2 * 32 + 32)


def test_nice_coupling_is_invertible():
    nice = NICECoupling(33, "relu", 2)
    x = tinyml.randn(2, 5, 33)
    with tinyml.no_grad():
        y = nice(x)
        back = nice(y, rev=True)
    assert np.abs(y.numpy() - x.numpy()).max() > 1e-2
    np.testing.assert_allclose(back.numpy(), x.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build,embed,final", [(gpt, "transformer.drop", "transformer.ln_f"),
                                               (llama, "model.embed_tokens", "model.norm"),
                                               (bert, "bert.embeddings", "cls.predictions.transform")])
def test_seqbn_inv_applies_nice_on_the_embeddings_and_its_inverse_before_the_head(build, embed, final):
    model = get_peft_model(build(), SeqBnInvConfig())
    m = model.base_model
    e, f = m.get_submodule(embed).invertible, m.get_submodule(final).invertible
    assert e.adapter["default"] is f.adapter["default"]  # one coupling, used both ways
    seen = {}

    def record(mod, args, out):  # runs after the adapter's hook: out is nice(the embedding output)
        with tinyml.no_grad():
            seen.setdefault("plain", mod.forward(*args))
        seen.setdefault("adapted", out)

    m.get_submodule(embed).register_forward_hook(record)
    logits_of(model, ids(model))
    nice = e.adapter["default"]
    with tinyml.no_grad():
        np.testing.assert_allclose(seen["adapted"].numpy(), nice(seen["plain"]).numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(nice(seen["adapted"], rev=True).numpy(), seen["plain"].numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_training_reaches_only_the_adapters_and_learns():
    model = get_peft_model(gpt(tied=False), SeqBnConfig(reduction_factor=2))
    idx = ids(model, batch=4)
    targets = tinyml.cat([idx[:, 1:], idx[:, :1]], dim=1)
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and all(any(p is q for q in model.base_model.transformer.h[0].bottleneck.parameters())
                          or any(p is q for q in model.base_model.transformer.h[1].bottleneck.parameters())
                          for p in params)
    opt = tinyml.optim.AdamW(params, lr=3e-2)
    losses = []
    for _ in range(12):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05
    assert all(p.grad is None for p in model.base_model.parameters() if not p.requires_grad)


def test_switching_disabling_and_unloading():
    base = gpt()
    idx = ids(base)
    plain = logits_of(base, idx)
    model = get_peft_model(base, SeqBnConfig())
    model.add_adapter("houlsby", DoubleSeqBnConfig())
    _shake(model)
    first = logits_of(model, idx)
    model.set_adapter("houlsby")
    second = logits_of(model, idx)
    assert np.abs(first - plain).max() > 1e-3 and np.abs(second - first).max() > 1e-3
    with model.disable_adapter():
        np.testing.assert_array_equal(logits_of(model, idx), plain)
    unloaded = model.unload()
    assert not any(isinstance(m, BottleneckLayer) for m in unloaded.modules())
    np.testing.assert_array_equal(logits_of(unloaded, idx), plain)
    assert set(unloaded.state_dict()) == set(gpt().state_dict())


def test_bottleneck_and_lora_together_and_leave_out():
    model = get_peft_model(gpt(), SeqBnConfig(leave_out=[0]))
    assert not hasattr(model.base_model.transformer.h[0], "bottleneck")
    assert isinstance(model.base_model.transformer.h[1].bottleneck, BottleneckLayer)
    model.add_adapter("lora", LoraConfig(r=2, target_modules=["c_attn"]))
    model.set_adapter("lora")
    assert all("lora" in n for n, p in model.named_parameters() if p.requires_grad)


def test_errors():
    model = get_peft_model(gpt(), SeqBnConfig())
    with pytest.raises(TypeError, match=r"'transformer.h.0.bottleneck' cannot be merged"):
        model.merge_and_unload()
    with pytest.raises(TypeError, match=r"transformer.h.0.bottleneck.*cannot be merged"):
        model.merge()
    with pytest.raises(ValueError, match="already has an adapter named 'x'"):
        model.add_adapter("x", SeqBnConfig())
        model.base_model.transformer.h[0].bottleneck.adapters.pop("x")
        model.peft_config.pop("x")
        model.add_adapter("x", SeqBnConfig())
    with pytest.raises(ValueError, match="non_linearity 'bogus'"):
        SeqBnConfig(non_linearity="bogus")
    with pytest.raises(ValueError, match="found no transformer blocks in Sequential"):
        get_peft_model(nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 4)), SeqBnConfig())


def test_mamba_takes_lora_seqbn_and_the_invertible_adapter():
    from tinyml.models import MambaConfig, MambaLM

    def mamba():
        tinyml.manual_seed(4)
        return MambaLM(MambaConfig(vocab_size=61, d_model=32, n_layer=2)).eval()

    idx = ids(mamba())
    plain = logits_of(mamba(), idx)
    lora = get_peft_model(mamba(), LoraConfig(r=2, target_modules=["in_proj", "out_proj"]))
    for p in lora.parameters():
        if p.requires_grad:
            p.data = tinyml.randn(*p.shape) * 0.1
    unmerged = logits_of(lora, idx)
    np.testing.assert_allclose(logits_of(lora.merge_and_unload(), idx), unmerged, rtol=1e-5, atol=1e-5)
    for config in (SeqBnConfig(), SeqBnInvConfig()):
        model = get_peft_model(mamba(), config)
        _shake(model)
        assert np.abs(logits_of(model, idx) - plain).max() > 1e-3
        np.testing.assert_array_equal(logits_of(model.unload(), idx), plain)
    with pytest.raises(ValueError, match=r"block 'backbone.layers.0' has no feed-forward child .*'mixer'"):
        get_peft_model(mamba(), DoubleSeqBnConfig())
