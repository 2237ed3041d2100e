"""Hugging Face folders: transformers models with random weights saved locally, loaded in tinyml,
logits equal to 1e-4 in float32; and tinyml's save_pretrained loaded back by transformers."""
import json
import os

import numpy as np
import pytest
from tinyml.models import GPT, BertForMaskedLM, Llama, from_pretrained

import tinyml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()


def _gpt2(tie=True):
    cfg = transformers.GPT2Config(vocab_size=61, n_positions=24, n_embd=32, n_layer=2, n_head=4,
                                  tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg)


def _llama(tie=False, kv=2):
    cfg = transformers.LlamaConfig(vocab_size=67, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=kv, max_position_embeddings=64,
                                   rope_theta=500.0, rms_norm_eps=1e-5, tie_word_embeddings=tie,
                                   bos_token_id=0, eos_token_id=1, pad_token_id=None)
    return transformers.LlamaForCausalLM(cfg)


def _bert():
    cfg = transformers.BertConfig(vocab_size=53, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=48, max_position_embeddings=40, type_vocab_size=2)
    return transformers.BertForMaskedLM(cfg)


def _randomize(model):
    # default init leaves biases and LayerNorm at 0/1; random values catch a missed or swapped tensor
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            gain = 1.0 if "norm" in name.lower() and name.endswith("weight") else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + gain)
    return model.eval()


def _ids(vocab, shape=(2, 11)):
    return np.random.default_rng(1).integers(0, vocab, size=shape)


def _hf_logits(model, ids, **kw):
    with torch.no_grad():
        return model(torch.tensor(ids), **kw).logits.numpy()


def _tm_logits(model, ids, **kw):
    with tinyml.no_grad():
        logits, _ = model(tinyml.tensor(ids), **kw)
    return logits.numpy()


@pytest.mark.parametrize("make,cls", [(lambda: _gpt2(True), GPT), (lambda: _gpt2(False), GPT),
                                      (lambda: _llama(False, 2), Llama), (lambda: _llama(True, 6), Llama),
                                      (_bert, BertForMaskedLM)])
def test_from_pretrained_logits_match(tmp_path, make, cls):
    hf = _randomize(make())
    hf.save_pretrained(str(tmp_path))
    model = from_pretrained(str(tmp_path))
    assert isinstance(model, cls) and not model.training
    ids = _ids(hf.config.vocab_size)
    np.testing.assert_allclose(_tm_logits(model, ids), _hf_logits(hf, ids), rtol=1e-4, atol=1e-4)


def test_bert_padding_mask_and_token_types(tmp_path):
    hf = _randomize(_bert())
    hf.save_pretrained(str(tmp_path))
    model = from_pretrained(str(tmp_path))
    ids = _ids(53, (2, 9))
    mask = np.ones((2, 9), dtype=np.int64)
    mask[1, 6:] = 0
    types = np.zeros((2, 9), dtype=np.int64)
    types[:, 4:] = 1
    want = _hf_logits(hf, ids, attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    got = _tm_logits(model, ids, attention_mask=tinyml.tensor(mask), token_type_ids=tinyml.tensor(types))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1, :6], want[1, :6], rtol=1e-4, atol=1e-4)  # padded positions are free


def test_sharded_checkpoint(tmp_path):
    hf = _randomize(_llama())
    hf.save_pretrained(str(tmp_path), max_shard_size="20KB")
    assert os.path.exists(tmp_path / "model.safetensors.index.json")
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".safetensors")]) > 1
    model = from_pretrained(str(tmp_path))
    ids = _ids(67)
    np.testing.assert_allclose(_tm_logits(model, ids), _hf_logits(hf, ids), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make,auto", [(lambda: _gpt2(True), "AutoModelForCausalLM"),
                                       (lambda: _llama(True, 2), "AutoModelForCausalLM"),
                                       (_bert, "AutoModelForMaskedLM")])
def test_save_pretrained_loads_in_transformers(tmp_path, make, auto):
    hf = _randomize(make())
    hf.save_pretrained(str(tmp_path / "a"))
    model = from_pretrained(str(tmp_path / "a"))
    model.save_pretrained(str(tmp_path / "b"))
    back = getattr(transformers, auto).from_pretrained(str(tmp_path / "b")).eval()
    assert type(back) is type(hf)
    ids = _ids(hf.config.vocab_size)
    np.testing.assert_allclose(_hf_logits(back, ids), _tm_logits(model, ids), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_hf_logits(back, ids), _hf_logits(hf, ids), rtol=1e-5, atol=1e-5)


def test_fresh_tinyml_model_roundtrip(tmp_path):
    tinyml.manual_seed(0)
    from tinyml.models import GPTConfig

    model = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    model.save_pretrained(str(tmp_path))
    cfg = json.load(open(tmp_path / "config.json"))
    assert cfg["architectures"] == ["GPT2LMHeadModel"] and cfg["n_embd"] == 16
    back = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    ids = _ids(40, (1, 16))
    np.testing.assert_allclose(_hf_logits(back, ids), _tm_logits(model, ids), rtol=1e-4, atol=1e-4)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="downloads nothing"):
        from_pretrained("gpt2")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["T5ForConditionalGeneration"]}))
    with pytest.raises(ValueError, match="unsupported architecture"):
        from_pretrained(str(tmp_path))
    hf = _gpt2()
    hf.save_pretrained(str(tmp_path / "g"))
    cfg = json.load(open(tmp_path / "g" / "config.json"))
    cfg["n_embd"] = 48
    (tmp_path / "g" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"has shape \(61, 32\), the config implies \(61, 48\)"):
        from_pretrained(str(tmp_path / "g"))
    os.remove(tmp_path / "g" / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        from_pretrained(str(tmp_path / "g"))


def test_bfloat16_weights_and_legacy_names(tmp_path):
    # bf16 checkpoints (common on the hub) load as float32; the original OpenAI GPT-2 files name
    # tensors without "transformer." and carry attn.bias buffers; old Llama configs have rope_theta.
    hf = _randomize(_gpt2()).to(torch.bfloat16)
    hf.save_pretrained(str(tmp_path / "bf16"))
    model = from_pretrained(str(tmp_path / "bf16"))
    hf = hf.float()
    ids = _ids(61)
    np.testing.assert_allclose(_tm_logits(model, ids), _hf_logits(hf, ids), rtol=1e-4, atol=1e-4)

    from tinyml.models.safetensors_io import read_safetensors, write_safetensors

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    weights = read_safetensors(str(tmp_path / "bf16" / "model.safetensors"))
    weights = {k.removeprefix("transformer."): v for k, v in weights.items()}
    weights["h.0.attn.bias"] = np.tril(np.ones((1, 1, 24, 24), dtype=np.float32))
    write_safetensors(str(legacy / "model.safetensors"), weights)
    cfg = json.load(open(tmp_path / "bf16" / "config.json"))
    (legacy / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "architectures"}))
    np.testing.assert_allclose(_tm_logits(from_pretrained(str(legacy)), ids), _tm_logits(model, ids), rtol=0, atol=0)

    hf = _randomize(_llama())
    hf.save_pretrained(str(tmp_path / "llama"))
    cfg = json.load(open(tmp_path / "llama" / "config.json"))
    cfg.pop("rope_parameters", None)
    cfg["rope_theta"] = 500.0
    (tmp_path / "llama" / "config.json").write_text(json.dumps(cfg))
    ids = _ids(67)
    np.testing.assert_allclose(_tm_logits(from_pretrained(str(tmp_path / "llama")), ids), _hf_logits(hf, ids),
                               rtol=1e-4, atol=1e-4)
