"""MambaForCausalLM folders: transformers' model built from a small config with random weights, saved
in tmp_path, loaded by tinyml.models.from_pretrained; logits, gradients and greedy tokens against
transformers, save_pretrained read back by transformers, and the errors."""
import json
import os

import numpy as np
import pytest
import torch
from tinyml.models import MambaLM, from_pretrained, generate

import tinyml
from tinyml.io import read_safetensors, write_safetensors
from tinyml.testing import assert_close

transformers = pytest.importorskip("transformers")


def hf_model(tmp_path, **kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=40, hidden_size=24, num_hidden_layers=2, state_size=6, conv_kernel=3, expand=2)
    model = transformers.MambaForCausalLM(transformers.MambaConfig(**{**cfg, **kw})).eval()
    with torch.no_grad():  # D = 1 and zero conv biases at init: perturb so that every tensor matters
        for name, p in model.named_parameters():
            if name.endswith(("mixer.D", "conv1d.bias", "norm.weight", "norm_f.weight")):
                p.add_(0.3 * torch.randn_like(p))
    folder = str(tmp_path / "hf")
    model.save_pretrained(folder)
    return model, folder


IDS = np.random.default_rng(0).integers(0, 40, (2, 13))


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_transformers(tmp_path, tied):
    hf, folder = hf_model(tmp_path, tie_word_embeddings=tied)
    model = from_pretrained(folder)
    assert isinstance(model, MambaLM) and model.config.tie_word_embeddings is tied
    with torch.no_grad():
        want = hf(torch.tensor(IDS)).logits
    logits, _ = model(tinyml.tensor(IDS))
    assert_close(logits.detach(), want, rtol=1e-4, atol=1e-4)


def test_loss_and_gradients_match_transformers(tmp_path):
    hf, folder = hf_model(tmp_path)
    model = from_pretrained(folder).train()
    hf.train()
    out = hf(torch.tensor(IDS), labels=torch.tensor(IDS))
    out.loss.backward()
    _, loss = model(tinyml.tensor(IDS[:, :-1]), tinyml.tensor(IDS[:, 1:]))
    loss.backward()
    assert_close(loss.detach(), out.loss.detach(), rtol=1e-5, atol=1e-5)
    hf_grads = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        assert_close(p.grad, hf_grads[name].grad, rtol=1e-3, atol=1e-5, msg=name)


def test_greedy_tokens_match_transformers_generate(tmp_path):
    hf, folder = hf_model(tmp_path)
    model = from_pretrained(folder)
    prompt = IDS[:, :4]
    with torch.no_grad():
        want = hf.generate(torch.tensor(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                           max_new_tokens=10, do_sample=False, pad_token_id=0).numpy()
    assert generate(model, prompt, 10, temperature=0) == want.tolist()


def test_save_pretrained_is_read_back_by_transformers(tmp_path):
    _, folder = hf_model(tmp_path)
    model = from_pretrained(folder)
    out = str(tmp_path / "ours")
    model.save_pretrained(out)
    back = transformers.MambaForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        want = back(torch.tensor(IDS)).logits
    assert_close(model(tinyml.tensor(IDS))[0].detach(), want, rtol=1e-4, atol=1e-4)
    assert back.config.state_size == 6 and back.config.conv_kernel == 3
    assert_close(from_pretrained(out)(tinyml.tensor(IDS))[0].detach(), want, rtol=1e-5, atol=1e-5)


def test_missing_mixer_tensor_and_bad_config_are_named(tmp_path):
    _, folder = hf_model(tmp_path)
    path = os.path.join(folder, "model.safetensors")
    weights, _ = read_safetensors(path)
    del weights["backbone.layers.1.mixer.A_log"]
    write_safetensors(path, weights)
    with pytest.raises(ValueError, match="missing.*backbone.layers.1.mixer.A_log"):
        from_pretrained(folder)
    cfg_path = os.path.join(folder, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    with open(cfg_path, "w") as f:
        json.dump({**cfg, "hidden_act": "gelu"}, f)
    with pytest.raises(ValueError, match="hidden_act is 'gelu'"):
        from_pretrained(folder)
