"""peft adapter folders both ways: transformers + peft with random weights saved in tmp_path,
loaded into tinyml (logits to 1e-4), and tinyml's save_adapter loaded back by peft."""
import json

import numpy as np
import pytest
import torch
from peft_helpers import gpt, ids, logits_of, randomise_lora
from tinyml.models import from_pretrained, load_adapter, save_adapter
from tinyml.models.peft import (
    DoubleSeqBnConfig,
    LoraConfig,
    LoraLinear,
    LoraXSConfig,
    LSTConfig,
    PeftModel,
    SeqBnInvConfig,
    get_peft_model,
)

import tinyml
import tinyml.nn as nn

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
transformers.logging.set_verbosity_error()


def _gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=61, n_positions=24, n_embd=32, n_layer=2, n_head=4,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=67, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                                   rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=1, pad_token_id=None)
    return transformers.LlamaForCausalLM(cfg).eval()


CASES = [(_gpt2, dict(target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)),
         (_llama, dict(target_modules="all-linear", use_rslora=True, lora_alpha=12)),
         (_llama, dict(target_modules=r".*\.(q_proj|v_proj)", rank_pattern={"v_proj": 2}))]


def _tokens(vocab):
    return np.random.default_rng(1).integers(0, vocab, size=(2, 9))


def _peft_logits(model, tokens):
    with torch.no_grad():
        return model(torch.tensor(tokens)).logits.numpy()


@pytest.mark.parametrize("make,options", CASES)
def test_a_peft_adapter_loads_with_peft_logits(tmp_path, make, options):
    hf = make()
    hf.save_pretrained(str(tmp_path / "base"))
    config = peft.LoraConfig(r=4, init_lora_weights=False, **{"lora_alpha": 8, **options})
    wrapped = peft.get_peft_model(hf, config).eval()
    wrapped.save_pretrained(str(tmp_path / "adapter"))
    tokens = _tokens(hf.config.vocab_size)
    model = load_adapter(from_pretrained(str(tmp_path / "base")), str(tmp_path / "adapter"))
    expected = _peft_logits(wrapped, tokens)
    with wrapped.disable_adapter():
        assert np.abs(expected - _peft_logits(wrapped, tokens)).max() > 1e-3  # the adapter matters
    np.testing.assert_allclose(logits_of(model, tinyml.tensor(tokens)), expected, rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in model.parameters())  # peft's inference mode


@pytest.mark.parametrize("make,options", CASES[:2])
def test_save_adapter_loads_in_peft_with_the_same_logits(tmp_path, make, options):
    hf = make()
    hf.save_pretrained(str(tmp_path / "base"))
    options = {k: v for k, v in options.items() if k != "fan_in_fan_out"}
    config = LoraConfig(**{"r": 4, "lora_alpha": 8, **options})
    model = get_peft_model(from_pretrained(str(tmp_path / "base")), config)
    randomise_lora(model)
    model.save_pretrained(str(tmp_path / "adapter"))  # peft's name for save_adapter
    back = peft.PeftModel.from_pretrained(make(), str(tmp_path / "adapter")).eval()
    tokens = _tokens(hf.config.vocab_size)
    np.testing.assert_allclose(_peft_logits(back, tokens), logits_of(model, tinyml.tensor(tokens)),
                               rtol=1e-4, atol=1e-4)


def test_peft_counts_the_same_trainable_parameters(tmp_path):
    hf = _llama()
    hf.save_pretrained(str(tmp_path))
    theirs = peft.get_peft_model(hf, peft.LoraConfig(r=4, target_modules="all-linear"))
    ours = get_peft_model(from_pretrained(str(tmp_path)), LoraConfig(r=4, target_modules="all-linear"))
    assert ours.get_nb_trainable_parameters() == theirs.get_nb_trainable_parameters()


class _OddNames(nn.Module):
    """Module names that contain "weight" and "lora": peft's substring matching trips on these."""

    def __init__(self):
        super().__init__()
        self.weight_proj = nn.Linear(6, 6)
        self.lora_A = nn.Linear(6, 5)  # a base layer literally named like an adapter part
        self.lora_gate = nn.Linear(5, 4)

    def forward(self, x):
        return self.lora_gate(self.lora_A(self.weight_proj(x)))


def test_module_names_containing_weight_or_lora_round_trip(tmp_path):
    config = LoraConfig(r=2, target_modules=["weight_proj", "lora_A", "lora_gate"])
    model = get_peft_model(_OddNames(), config)
    randomise_lora(model)
    x = tinyml.randn(3, 6)
    with tinyml.no_grad():
        expected = model(x).numpy()
    save_adapter(model, str(tmp_path))
    from tinyml.io import read_safetensors
    keys = set(read_safetensors(str(tmp_path / "adapter_model.safetensors"))[0])
    assert keys == {f"base_model.model.{m}.lora_{ab}.weight" for m in ("weight_proj", "lora_A", "lora_gate")
                    for ab in "AB"}
    fresh = _OddNames()
    fresh.load_state_dict({k.replace(".base_layer", ""): v for k, v in model.base_model.state_dict().items()
                           if ".lora_A.default" not in k and ".lora_B.default" not in k})
    loaded = load_adapter(fresh, str(tmp_path))
    with tinyml.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("config", [LoraXSConfig(r=4, target_modules=["c_attn"]), DoubleSeqBnConfig(),
                                    SeqBnInvConfig(), LSTConfig(reduction_factor=4, drop_layers=[1])])
def test_tinyml_methods_round_trip_through_a_folder(tmp_path, config):
    model = get_peft_model(gpt(), config)
    with tinyml.no_grad():  # every trainable tensor away from its initial value
        for p in model.parameters():
            if p.requires_grad:
                p.add_(tinyml.randn(*p.shape) * 0.1)
    idx = ids(model)
    expected = logits_of(model, idx)
    save_adapter(model, str(tmp_path))
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == config.peft_type
    loaded = PeftModel.from_pretrained(gpt(), str(tmp_path), is_trainable=True)
    np.testing.assert_allclose(logits_of(loaded, idx), expected, rtol=1e-6, atol=1e-6)
    assert loaded.get_nb_trainable_parameters()[0] == model.get_nb_trainable_parameters()[0]


# ---- errors --------------------------------------------------------------------------------------
def test_an_adapter_for_another_base_names_module_and_shapes_and_leaves_the_model_alone(tmp_path):
    model = get_peft_model(gpt(), LoraConfig(r=2, target_modules=["c_attn"]))
    save_adapter(model, str(tmp_path))
    from tinyml.models import GPT, GPTConfig
    other = GPT(GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=48))
    before = {k: v.detach().numpy().copy() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match=r"lora_A.weight has shape \(2, 32\), but module "
                                         r"'transformer.h.0.attn.c_attn' needs \(2, 48\)"):
        load_adapter(other, str(tmp_path))
    assert not any(isinstance(m, LoraLinear) for m in other.modules())
    assert {k: v.detach().numpy() for k, v in other.state_dict().items()}.keys() == before.keys()
    deeper = GPT(GPTConfig(vocab_size=61, block_size=16, n_layer=3, n_head=2, n_embd=32))
    with pytest.raises(ValueError, match=r"no tensor .*h.2.attn.c_attn.lora_A.weight.*module "
                                         r"'transformer.h.2.attn.c_attn'"):
        load_adapter(deeper, str(tmp_path))


def test_unknown_method_and_unsupported_options(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    with pytest.raises(ValueError, match="peft_type 'IA3' is not one tinyml reads"):
        load_adapter(gpt(), str(tmp_path))
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "use_dora": True}))
    with pytest.raises(NotImplementedError, match="use_dora=True"):
        load_adapter(gpt(), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        load_adapter(gpt(), str(tmp_path / "missing"))
