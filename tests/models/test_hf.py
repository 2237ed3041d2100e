"""Hugging Face folders: transformers models with random weights saved locally, loaded in tinyml,
logits equal to 1e-4 in float32; and tinyml's save_pretrained loaded back by transformers."""
import ast
import json
import os
import re
from dataclasses import replace

import numpy as np
import pytest
from tinyml.models import GPT, BertForMaskedLM, Llama, from_pretrained
from tinyml.models import hf as hf_io

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
    with pytest.raises(FileNotFoundError, match=r"g holds no weights: looked for model.safetensors and "
                                                r"model.safetensors.index.json"):
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

    from tinyml.io import read_safetensors, write_safetensors

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    weights, _ = read_safetensors(str(tmp_path / "bf16" / "model.safetensors"))
    weights = {k.removeprefix("transformer."): v for k, v in weights.items()}
    weights["h.0.attn.bias"] = np.tril(np.ones((1, 1, 24, 24), dtype=np.float32))
    write_safetensors(str(legacy / "model.safetensors"), weights)
    cfg = json.load(open(tmp_path / "bf16" / "config.json"))
    (legacy / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "architectures"}))
    np.testing.assert_allclose(_tm_logits(from_pretrained(str(legacy)), ids), _tm_logits(model, ids),
                               rtol=0, atol=0)

    hf = _randomize(_llama())
    hf.save_pretrained(str(tmp_path / "llama"))
    cfg = json.load(open(tmp_path / "llama" / "config.json"))
    cfg.pop("rope_parameters", None)
    cfg["rope_theta"] = 500.0
    (tmp_path / "llama" / "config.json").write_text(json.dumps(cfg))
    ids = _ids(67)
    np.testing.assert_allclose(_tm_logits(from_pretrained(str(tmp_path / "llama")), ids), _hf_logits(hf, ids),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dtype_is_honoured_as_model_to_gives_it(tmp_path, dtype):
    hf = _randomize(_llama())
    hf.save_pretrained(str(tmp_path))
    dt = getattr(tinyml, dtype)
    model = from_pretrained(str(tmp_path), dtype=dt)
    want = from_pretrained(str(tmp_path)).to(dt)
    assert {p.dtype for p in model.parameters()} == {dt}
    assert {p.dtype for p in from_pretrained(str(tmp_path), dtype=dtype).parameters()} == {dt}  # by name too
    for (name, a), (_, b) in zip(model.state_dict().items(), want.state_dict().items()):
        np.testing.assert_array_equal(a.numpy().view(np.uint16), b.numpy().view(np.uint16), err_msg=name)
    ids = _ids(67)
    np.testing.assert_allclose(_tm_logits(model, ids).astype(np.float32), _hf_logits(hf, ids), atol=0.1)


class GPTWithBuffers(GPT):  # transformers keeps int/bool buffers in their dtype; so must we
    def __init__(self, cfg):
        super().__init__(cfg)
        self.transformer.register_buffer("seen_tokens", tinyml.zeros(2, dtype=tinyml.int64))
        self.transformer.register_buffer("keep", tinyml.zeros(3, dtype=tinyml.bool))


@pytest.fixture
def registry(monkeypatch):
    """tinyml.models.hf's registry, restored after the test."""
    for table in ("_ADAPTERS", "_BY_MODEL_TYPE", "_BY_CLASS"):
        monkeypatch.setattr(hf_io, table, dict(getattr(hf_io, table)))
    return hf_io


def _register_gpt_with_buffers(registry, folder):
    """GPTWithBuffers as a new architecture, "GPT2WithBuffers", named by the config in `folder`."""
    gpt2 = registry._ADAPTERS["GPT2LMHeadModel"]
    registry.register_architecture(replace(gpt2, architecture="GPT2WithBuffers", model_class=GPTWithBuffers))
    cfg = json.load(open(folder / "config.json"))
    (folder / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPT2WithBuffers"]}))


def test_integer_and_bool_buffers_keep_their_dtype(tmp_path, registry):
    from tinyml.io import read_safetensors, write_safetensors

    _randomize(_gpt2()).save_pretrained(str(tmp_path))
    _register_gpt_with_buffers(registry, tmp_path)
    path = tmp_path / "model.safetensors"
    weights, _ = read_safetensors(path)
    big = np.array([2**53 + 1, -(2**40) - 3], dtype=np.int64)  # not representable in float32 (nor float64)
    weights["transformer.seen_tokens"], weights["transformer.keep"] = big, np.array([True, False, True])
    write_safetensors(path, weights)
    model = from_pretrained(str(tmp_path), dtype=tinyml.bfloat16)
    assert type(model) is GPTWithBuffers
    body = model.transformer
    assert body.seen_tokens.dtype is tinyml.int64 and body.seen_tokens.tolist() == big.tolist()
    assert body.keep.dtype is tinyml.bool and body.keep.tolist() == [True, False, True]
    assert model.transformer.wte.weight.dtype is tinyml.bfloat16
    weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"].astype(np.int64)
    write_safetensors(path, weights)
    with pytest.raises(ValueError, match=r"tensor 'transformer.wpe.weight' is tinyml.int64 in the "
                                         r"checkpoint, but the model holds it as tinyml.float32"):
        from_pretrained(str(tmp_path))


def test_a_registered_architecture_loads_and_saves_under_its_own_name(tmp_path, registry):
    class GPTVariant(GPT):
        pass

    class GPTVariantChild(GPTVariant):
        pass

    gpt2 = registry._ADAPTERS["GPT2LMHeadModel"]
    registry.register_architecture(replace(gpt2, architecture="GPT2Variant", model_type="gpt2-variant",
                                           model_class=GPTVariant))
    hf = _randomize(_gpt2())
    hf.save_pretrained(str(tmp_path / "hf"))
    cfg = json.load(open(tmp_path / "hf" / "config.json"))
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPT2Variant"]}))
    model = from_pretrained(str(tmp_path / "hf"))
    assert type(model) is GPTVariant
    ids = _ids(61)
    np.testing.assert_allclose(_tm_logits(model, ids), _hf_logits(hf, ids), rtol=1e-4, atol=1e-4)
    model.save_pretrained(str(tmp_path / "variant"))  # a model saves as the architecture of its class
    saved = json.load(open(tmp_path / "variant" / "config.json"))
    assert saved["architectures"] == ["GPT2Variant"] and saved["model_type"] == "gpt2-variant"
    (tmp_path / "variant" / "config.json").write_text(json.dumps({**saved, "architectures": None}))
    assert type(from_pretrained(str(tmp_path / "variant"))) is GPTVariant  # found by model_type alone
    model.__class__ = GPTVariantChild  # ... or of its nearest registered base class
    model.save_pretrained(str(tmp_path / "child"))
    assert json.load(open(tmp_path / "child" / "config.json"))["architectures"] == ["GPT2Variant"]
    model.__class__ = GPT
    model.save_pretrained(str(tmp_path / "plain"))
    assert json.load(open(tmp_path / "plain" / "config.json"))["architectures"] == ["GPT2LMHeadModel"]


def test_registry_errors_name_the_architecture_and_classes(tmp_path, registry):
    gpt2 = registry._ADAPTERS["GPT2LMHeadModel"]
    with pytest.raises(ValueError, match=r"architecture 'GPT2LMHeadModel' is already registered for "
                                         r"tinyml\.models\.transformer\.gpt\.GPT; cannot register it for "
                                         r".*GPTWithBuffers"):
        registry.register_architecture(replace(gpt2, model_class=GPTWithBuffers))
    assert registry._ADAPTERS["GPT2LMHeadModel"] is gpt2
    registry.register_architecture(replace(gpt2))  # the same class again (a module reload): replaces it
    assert registry._ADAPTERS["GPT2LMHeadModel"] is not gpt2 and registry._BY_CLASS[GPT] is not gpt2
    with pytest.raises(TypeError, match="save_pretrained: no Hugging Face format for Linear"):
        registry.save_pretrained(tinyml.nn.Linear(2, 2), str(tmp_path / "linear"))
    assert not os.path.exists(tmp_path / "linear")


def test_each_adapter_lives_in_its_models_file():
    # adding a family = one registration in the model's own file; hf.py imports no model and, outside
    # its docstrings, names no architecture
    for name, adapter in hf_io._ADAPTERS.items():
        assert adapter.architecture == name
        for fn in (adapter.config_from_hf, adapter.config_to_hf, adapter.weights_from_hf,
                   adapter.weights_to_hf):
            assert fn.__module__ in (adapter.model_class.__module__, hf_io.__name__), (name, fn)
    with open(hf_io.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "typing", "tinyml.io"}, imported
    docs = {ast.get_docstring(n, clean=False) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not [(s, a) for s in strings - docs for a in hf_io._ADAPTERS if a in s]


def test_a_tensor_in_two_shards_is_an_error(tmp_path):
    from tinyml.io import read_safetensors, write_safetensors

    _randomize(_llama()).save_pretrained(str(tmp_path), max_shard_size="20KB")
    weight_map = json.load(open(tmp_path / "model.safetensors.index.json"))["weight_map"]
    first, second = sorted(set(weight_map.values()))[:2]
    a, _ = read_safetensors(tmp_path / first)
    b, _ = read_safetensors(tmp_path / second)
    name = next(iter(a))
    write_safetensors(tmp_path / second, {**b, name: a[name] + 1})  # a second, different copy
    with pytest.raises(ValueError, match=rf"tensor '{re.escape(name)}' is stored twice, in {first} and in "
                                         rf"{second}"):
        from_pretrained(str(tmp_path))


def _bad_folder(tmp_path, make=_gpt2):
    make().save_pretrained(str(tmp_path))
    return tmp_path, json.load(open(tmp_path / "config.json"))


def test_config_and_index_errors_name_the_file_and_key(tmp_path):
    folder, cfg = _bad_folder(tmp_path / "g")
    config = str(folder / "config.json")
    for text, message in [("", "not a valid config.json \\(invalid JSON"),
                          ("{'n_layer': 2", "not a valid config.json \\(invalid JSON"),
                          ("[1, 2]", "not a valid config.json \\(a JSON list, not an object")]:
        (folder / "config.json").write_text(text)
        with pytest.raises(ValueError, match=re.escape(config) + ": " + message):
            from_pretrained(str(folder))
    for key, value, message in [("n_layer", None, "the config has no 'n_layer', which gpt2 needs"),
                                ("n_layer", "two", "n_layer is 'two'; expected a positive integer"),
                                ("n_head", 0, "n_head is 0; expected a positive integer"),
                                ("layer_norm_epsilon", "1e-5", "layer_norm_epsilon is '1e-5'; expected a"),
                                ("architectures", "GPT2LMHeadModel", "architectures is 'GPT2LMHeadModel'")]:
        changed = {k: v for k, v in {**cfg, key: value}.items() if v is not None}
        (folder / "config.json").write_text(json.dumps(changed))
        with pytest.raises(ValueError, match=re.escape(config) + ": " + re.escape(message)):
            from_pretrained(str(folder))
    folder, cfg = _bad_folder(tmp_path / "l", _llama)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "hidden_size"}))
    with pytest.raises(ValueError, match=r"l/config\.json: the config has no 'hidden_size', which llama"):
        from_pretrained(str(folder))
    folder, cfg = _bad_folder(tmp_path / "b", _bert)
    (folder / "config.json").write_text(json.dumps({**cfg, "hidden_dropout_prob": "x"}))
    with pytest.raises(ValueError, match=r"b/config\.json: hidden_dropout_prob is 'x'; expected a number"):
        from_pretrained(str(folder))


def test_index_and_missing_file_errors(tmp_path):
    _randomize(_llama()).save_pretrained(str(tmp_path), max_shard_size="20KB")
    index = tmp_path / "model.safetensors.index.json"
    good = index.read_text()
    index.write_text("")
    with pytest.raises(ValueError, match=re.escape(str(index)) + ": not a valid safetensors index"):
        from_pretrained(str(tmp_path))
    index.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match=re.escape(str(index)) + ": 'weight_map' is missing"):
        from_pretrained(str(tmp_path))
    index.write_text(good)
    shard = sorted(set(json.loads(good)["weight_map"].values()))[0]
    os.remove(tmp_path / shard)
    with pytest.raises(FileNotFoundError, match=rf"names the shard '{shard}', which is not in "
                                                rf"{re.escape(str(tmp_path))}"):
        from_pretrained(str(tmp_path))
    os.remove(index)
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(tmp_path))} holds no weights: looked for "
                                                r"model.safetensors and model.safetensors.index.json"):
        from_pretrained(str(tmp_path))
    os.remove(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match=rf"no config.json in {re.escape(str(tmp_path))} "
                                                r"\(from_pretrained looks for config.json and model"):
        from_pretrained(str(tmp_path))


def test_a_corrupt_weights_file_names_file_and_tensor(tmp_path):
    _randomize(_gpt2()).save_pretrained(str(tmp_path))
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-1])  # no checksum in transformers' files; the header must still fit
    with pytest.raises(ValueError, match=r"model\.safetensors: tensor '.+' has data_offsets .* past the end"):
        from_pretrained(str(tmp_path))
