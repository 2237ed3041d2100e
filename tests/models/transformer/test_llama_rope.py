"""Rotary scaling in Hugging Face Llama folders: rope_parameters / rope_scaling read as the
installed transformers reads them, logits equal to transformers' to 1e-4 in float32, and a clear
NotImplementedError for the rope types tinyml does not implement."""
import json

import numpy as np
import pytest
from tinyml.models import Llama, LlamaConfig, from_pretrained

import tinyml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

LINEAR = {"rope_type": "linear", "factor": 2.0}
DYNAMIC = {"rope_type": "dynamic", "factor": 3.0}
# theta 500, head_dim 8: wavelengths 6.3, 140, 3.1e3, 7e4 against original 8 / (1, 4): one smoothed,
# three scaled
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8}


def _llama(rope_parameters):
    cfg = transformers.LlamaConfig(vocab_size=67, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=16,
                                   rope_parameters={**rope_parameters, "rope_theta": 500.0},
                                   rms_norm_eps=1e-5,
                                   bos_token_id=0, eos_token_id=1, pad_token_id=None)
    model = transformers.LlamaForCausalLM(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if "norm" in name else 0.0))
    return model.eval()


def _ids(length):
    return np.random.default_rng(1).integers(0, 67, size=(2, length))


def _hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


def _tm_logits(model, ids):
    with tinyml.no_grad():
        return model(tinyml.tensor(ids))[0].numpy()


def _edit_config(folder, **changes):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("rope", [LINEAR, DYNAMIC, LLAMA3], ids=lambda r: r["rope_type"])
def test_scaled_rope_logits_match_transformers(tmp_path, rope):
    hf = _llama(rope)
    hf.save_pretrained(str(tmp_path))
    model = from_pretrained(str(tmp_path))
    assert model.config.rope_scaling["rope_type"] == rope["rope_type"]
    plain = from_pretrained(str(tmp_path), rope_scaling=None)
    # 24 > max_position_embeddings (16): dynamic NTK rescales its base; then 12 (its plain tables again)
    for length in (24, 12):
        ids = _ids(length)
        want = _hf_logits(hf, ids)
        np.testing.assert_allclose(_tm_logits(model, ids), want, rtol=1e-4, atol=1e-4)
        if rope is not DYNAMIC or length > 16:  # the scaling matters: without it the logits differ
            assert np.abs(_tm_logits(plain, ids) - want).max() > 1e-3


def test_dynamic_rope_with_a_kv_cache_follows_transformers(tmp_path):
    # decoding past max_position_embeddings: each step's keys use the base of the length so far
    hf = _llama(DYNAMIC)
    hf.save_pretrained(str(tmp_path))
    model = from_pretrained(str(tmp_path))
    ids = _ids(20)
    cache = model.new_cache()
    with torch.no_grad():
        out = hf(torch.tensor(ids[:, :14]), use_cache=True)
    with tinyml.no_grad():
        got = model(tinyml.tensor(ids[:, :14]), cache=cache)[0].numpy()
    np.testing.assert_allclose(got, out.logits.numpy(), rtol=1e-4, atol=1e-4)
    for t in range(14, 20):
        with torch.no_grad():
            out = hf(torch.tensor(ids[:, t:t + 1]), cache=out.cache, use_cache=True)
        with tinyml.no_grad():
            got = model(tinyml.tensor(ids[:, t:t + 1]), cache=cache)[0].numpy()
        np.testing.assert_allclose(got, out.logits.numpy(), rtol=1e-4, atol=1e-4, err_msg=f"step {t}")


def _transformers_reload(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(str(folder)).eval()


def test_rope_scaling_beside_rope_parameters_is_applied_as_transformers_does(tmp_path):
    # transformers 5: rope_scaling replaces rope_parameters whole (theta from the top level, else 10000)
    _llama({"rope_type": "default"}).save_pretrained(str(tmp_path))
    for top_theta in (None, 300.0):
        _edit_config(tmp_path, rope_scaling=LINEAR, rope_theta=top_theta)
        hf = _transformers_reload(tmp_path)
        assert hf.config.rope_parameters["rope_type"] == "linear"
        model = from_pretrained(str(tmp_path))
        assert model.config.rope_theta == (top_theta or 10000.0)
        ids = _ids(12)
        np.testing.assert_allclose(_tm_logits(model, ids), _hf_logits(hf, ids), rtol=1e-4, atol=1e-4)


def test_legacy_type_key_and_top_level_original_length(tmp_path):
    _llama(LLAMA3).save_pretrained(str(tmp_path))
    # a Phi-3 style top-level original_max_position_embeddings wins over rope_parameters' for llama3
    _edit_config(tmp_path, original_max_position_embeddings=4)
    hf = _transformers_reload(tmp_path)
    model = from_pretrained(str(tmp_path))
    assert model.config.rope_scaling["original_max_position_embeddings"] == 4
    ids = _ids(12)
    np.testing.assert_allclose(_tm_logits(model, ids), _hf_logits(hf, ids), rtol=1e-4, atol=1e-4)
    # transformers 4 configs: {"type": "linear"} under rope_scaling, rope_theta at the top
    _edit_config(tmp_path, original_max_position_embeddings=None, rope_parameters=None,
                 rope_scaling={"type": "linear", "factor": 4.0}, rope_theta=250.0)
    hf = _transformers_reload(tmp_path)
    model = from_pretrained(str(tmp_path))
    assert model.config.rope_scaling == {"rope_type": "linear", "factor": 4.0}
    assert model.config.rope_theta == 250.0
    np.testing.assert_allclose(_tm_logits(model, ids), _hf_logits(hf, ids), rtol=1e-4, atol=1e-4)


def test_save_pretrained_writes_the_scaling(tmp_path):
    tinyml.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                              max_position_embeddings=16, rope_theta=800.0, rope_scaling=LLAMA3)).eval()
    model.save_pretrained(str(tmp_path))
    back = _transformers_reload(tmp_path)
    assert back.config.rope_parameters["rope_type"] == "llama3"
    ids = np.random.default_rng(2).integers(0, 40, size=(1, 20))
    np.testing.assert_allclose(_hf_logits(back, ids), _tm_logits(model, ids), rtol=1e-4, atol=1e-4)


def test_unsupported_or_incomplete_scaling(tmp_path):
    _llama({"rope_type": "default"}).save_pretrained(str(tmp_path))
    _edit_config(tmp_path, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 500.0})
    with pytest.raises(NotImplementedError, match=r"config\.json: rope_parameters: rope_type 'yarn' is "
                                                  r"not implemented in tinyml; supported: default, linear"):
        from_pretrained(str(tmp_path))
    _edit_config(tmp_path, rope_parameters={"rope_type": "linear", "rope_theta": 500.0})
    with pytest.raises(ValueError, match=r"config\.json: rope_parameters: rope_type 'linear' needs a "
                                         r"positive number 'factor', got None"):
        from_pretrained(str(tmp_path))
    _edit_config(tmp_path, rope_parameters=None, rope_scaling="linear")
    with pytest.raises(ValueError, match=r"config\.json: rope_scaling is 'linear'; expected a JSON object"):
        from_pretrained(str(tmp_path))
    with pytest.raises(NotImplementedError, match="rope_type 'longrope' is not implemented"):
        LlamaConfig(rope_scaling={"rope_type": "longrope", "factor": 2.0})
    with pytest.raises(ValueError, match="rope_scaling holds rope_theta=500; give it as the config's"):
        LlamaConfig(rope_scaling={"rope_type": "linear", "factor": 2.0, "rope_theta": 500})
    with pytest.raises(NotImplementedError, match="partial_rotary_factor=0.5 is not implemented"):
        LlamaConfig(rope_scaling={"rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.5})
