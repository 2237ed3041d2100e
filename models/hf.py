"""Hugging Face format folders on disk: config.json + model.safetensors (or a sharded index).

    model = tinyml.models.from_pretrained("path/to/folder")   # GPT2LMHeadModel, LlamaForCausalLM, BertForMaskedLM
    model.save_pretrained("out/")                             # transformers' from_pretrained reads it back

tinyml's module names mirror transformers', so the mapping is mostly the identity; the
differences are listed per architecture below (GPT-2's Conv1D weights are stored transposed,
tied output matrices are not stored, buffers such as rotary inv_freq or attn.bias are skipped).
Nothing is downloaded: a hub name that is not a folder gets an error saying so.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from .bert import BertConfig, BertForMaskedLM
from .gpt import GPT, GPTConfig
from .llama import Llama, LlamaConfig
from .safetensors_io import read_safetensors, write_safetensors

_GPT2_CONV1D = re.compile(r"\.(c_attn|c_proj|c_fc)\.weight$")


# ---- config translation ------------------------------------------------------------------------
def _gpt2_config(c: dict, overrides: dict) -> GPTConfig:
    if c.get("add_cross_attention"):
        raise ValueError("GPT-2 with cross-attention is not supported (add_cross_attention=true)")
    if c.get("scale_attn_by_inverse_layer_idx") or c.get("scale_attn_weights", True) is False:
        raise ValueError("GPT-2 attention scaling options other than 1/sqrt(head_dim) are not supported")
    kw = dict(vocab_size=c["vocab_size"], block_size=c.get("n_positions", c.get("n_ctx", 1024)),
              n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"], n_inner=c.get("n_inner"),
              layer_norm_eps=c.get("layer_norm_epsilon", 1e-5), activation=c.get("activation_function", "gelu_new"),
              tie_word_embeddings=c.get("tie_word_embeddings", True), dropout=0.0)
    kw.update(overrides)
    return GPTConfig(**kw)


def _rope_theta(c: dict) -> float:
    rp = c.get("rope_parameters") or {}
    scaling = c.get("rope_scaling") or {}
    kind = rp.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if kind not in ("default", None):
        raise ValueError(f"rope_type {kind!r} is not supported (only the default rotary embedding)")
    return float(rp.get("rope_theta", c.get("rope_theta", 10000.0)))


def _llama_config(c: dict, overrides: dict) -> LlamaConfig:
    if c.get("hidden_act", "silu") != "silu":
        raise ValueError(f"Llama with hidden_act={c['hidden_act']!r} is not supported (SwiGLU uses silu)")
    kw = dict(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
              num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
              num_key_value_heads=c.get("num_key_value_heads") or c["num_attention_heads"],
              head_dim=c.get("head_dim"), max_position_embeddings=c.get("max_position_embeddings", 2048),
              rope_theta=_rope_theta(c), rms_norm_eps=c.get("rms_norm_eps", 1e-6),
              tie_word_embeddings=c.get("tie_word_embeddings", False), attention_bias=c.get("attention_bias", False),
              mlp_bias=c.get("mlp_bias", False))
    kw.update(overrides)
    return LlamaConfig(**kw)


def _bert_config(c: dict, overrides: dict) -> BertConfig:
    if c.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"BERT position_embedding_type {c['position_embedding_type']!r} is not supported")
    names = [f for f in BertConfig.__dataclass_fields__ if f in c]
    kw = {f: c[f] for f in names}
    kw.update(overrides)
    return BertConfig(**kw)


_ARCHS = {
    "GPT2LMHeadModel": ("gpt2", _gpt2_config, GPT),
    "LlamaForCausalLM": ("llama", _llama_config, Llama),
    "BertForMaskedLM": ("bert", _bert_config, BertForMaskedLM),
}
_BY_MODEL_TYPE = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "bert": "BertForMaskedLM"}


# ---- weight name translation -------------------------------------------------------------------
def _hf_to_tinyml(arch: str, cfg, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, w in weights.items():
        if arch == "GPT2LMHeadModel":
            if name.endswith((".attn.bias", ".attn.masked_bias")):
                continue  # causal-mask buffers of old checkpoints
            if not name.startswith(("transformer.", "lm_head.")):
                name = "transformer." + name  # the original OpenAI checkpoints have no prefix
            if name == "lm_head.weight" and cfg.tie_word_embeddings:
                continue
            if _GPT2_CONV1D.search(name):
                w = w.T  # Conv1D stores (in, out); Linear is (out, in)
        elif arch == "LlamaForCausalLM":
            if name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and cfg.tie_word_embeddings):
                continue
        elif arch == "BertForMaskedLM":
            if name.startswith(("bert.pooler.", "cls.seq_relationship.")) or name.endswith("position_ids"):
                continue
            if name in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
                continue  # tied to the word embeddings and to cls.predictions.bias
            name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[name] = w
    return out


def _tinyml_to_hf(arch: str, cfg, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, w in state.items():
        if arch == "GPT2LMHeadModel" and _GPT2_CONV1D.search(name):
            w = w.T
        out[name] = np.ascontiguousarray(w)
    return out


# ---- folders -----------------------------------------------------------------------------------
def _read_weights(folder: str) -> dict[str, np.ndarray]:
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(single):
        return read_safetensors(single)
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        weights = {}
        for shard in sorted(set(weight_map.values())):
            weights.update(read_safetensors(os.path.join(folder, shard)))
        missing = set(weight_map) - set(weights)
        if missing:
            raise ValueError(f"{index} lists tensors its shards do not hold: {sorted(missing)[:5]}")
        return weights
    if os.path.exists(os.path.join(folder, "pytorch_model.bin")):
        raise ValueError(f"{folder} holds only pytorch_model.bin; tinyml reads safetensors (convert it with "
                         "transformers: model.save_pretrained(folder, safe_serialization=True))")
    raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {folder}")


def read_config(folder: str) -> dict:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder!r} is not a folder; from_pretrained reads a Hugging Face format folder "
                                "from disk (config.json + model.safetensors) and downloads nothing")
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in {folder}")
    with open(path) as f:
        return json.load(f)


def _architecture(c: dict) -> str:
    archs = c.get("architectures") or []
    for a in archs:
        if a in _ARCHS:
            return a
    if c.get("model_type") in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[c["model_type"]]
    raise ValueError(f"unsupported architecture {archs or c.get('model_type')!r}; "
                     f"tinyml loads {', '.join(_ARCHS)}")


def from_pretrained(folder: str, dtype=None, device=None, **overrides):
    """The tinyml model for a Hugging Face folder, weights loaded (float32 unless `dtype`),
    in eval mode. `overrides` replace config fields (e.g. dropout=0.1 for fine-tuning)."""
    import tinyml

    c = read_config(folder)
    arch = _architecture(c)
    _, make_config, model_cls = _ARCHS[arch]
    cfg = make_config(c, overrides)
    model = model_cls(cfg)
    weights = _hf_to_tinyml(arch, cfg, _read_weights(folder))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{folder}: weights do not match {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, shape in expected.items():
        if tuple(weights[k].shape) != shape:
            raise ValueError(f"{folder}: {k} has shape {tuple(weights[k].shape)}, the config implies {shape}")
    dtype = dtype or tinyml.float32
    state = {k: tinyml.tensor(np.asarray(v, dtype=np.float32)).to(dtype) for k, v in weights.items()}
    model.load_state_dict(state, strict=True)
    if device is not None:
        model.to(device)
    return model.eval()


def _hf_config(model) -> tuple[str, dict]:
    cfg = model.config
    if isinstance(model, GPT):
        if cfg.qk_layernorm:
            raise ValueError("transformers' GPT2 has no qk-layernorm; save this model with tinyml.save instead")
        return "GPT2LMHeadModel", dict(
            model_type="gpt2", vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
            n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=cfg.n_inner, activation_function=cfg.activation,
            layer_norm_epsilon=cfg.layer_norm_eps, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings, bos_token_id=None,
            eos_token_id=None)
    if isinstance(model, Llama):
        if cfg.qk_layernorm:
            raise ValueError("transformers' Llama has no qk-layernorm; save this model with tinyml.save instead")
        return "LlamaForCausalLM", dict(
            model_type="llama", vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
            head_dim=cfg.head_dim, max_position_embeddings=cfg.max_position_embeddings, hidden_act="silu",
            rope_theta=cfg.rope_theta, rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
            rms_norm_eps=cfg.rms_norm_eps, tie_word_embeddings=cfg.tie_word_embeddings,
            attention_bias=cfg.attention_bias, mlp_bias=cfg.mlp_bias, attention_dropout=cfg.dropout,
            bos_token_id=None, eos_token_id=None)
    if isinstance(model, BertForMaskedLM):
        return "BertForMaskedLM", dict(model_type="bert", position_embedding_type="absolute",
                                       tie_word_embeddings=True, **cfg.to_dict())
    raise TypeError(f"save_pretrained: no Hugging Face format for {type(model).__name__}")


def save_pretrained(model, folder: str) -> None:
    """Write config.json and model.safetensors (float32 as the model holds them) that
    transformers' AutoModel*.from_pretrained loads."""
    arch, c = _hf_config(model)
    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(folder, "model.safetensors"), _tinyml_to_hf(arch, model.config, state),
                      metadata={"format": "pt"})
    dtypes = {str(v.dtype).split(".")[-1] for v in model.state_dict().values()}
    c = {"architectures": [arch], "dtype": dtypes.pop() if len(dtypes) == 1 else "float32", **c}
    tmp = os.path.join(folder, f"config.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(c, f, indent=2)
    os.replace(tmp, os.path.join(folder, "config.json"))
