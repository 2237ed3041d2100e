"""Hugging Face format folders on disk: config.json + model.safetensors (or a sharded index).

    model = tinyml.models.from_pretrained("path/to/folder")  # GPT2LMHeadModel, LlamaForCausalLM or
                                                             # BertForMaskedLM
    model.save_pretrained("out/")                            # transformers' from_pretrained reads it back

tinyml's module names mirror transformers', so the mapping is mostly the identity; the
differences are listed per architecture below (GPT-2's Conv1D weights are stored transposed,
tied output matrices are not stored, buffers such as rotary inv_freq or attn.bias are skipped).
Nothing is downloaded: a hub name that is not a folder gets an error saying so.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import fields

import numpy as np

import tinyml
from tinyml.io import read_safetensors, write_safetensors

from .bert import BertConfig, BertForMaskedLM
from .gpt import GPT, GPTConfig
from .layers import check_rope_scaling
from .llama import Llama, LlamaConfig

_GPT2_CONV1D = re.compile(r"\.(c_attn|c_proj|c_fc)\.weight$")


# ---- config translation ------------------------------------------------------------------------
_REQUIRED = object()


class _Config(dict):
    """config.json's contents, with the file's path for error messages."""

    def __init__(self, data: dict, path: str):
        super().__init__(data)
        self.path = path


_KINDS = {"int": "an integer", "int>0": "a positive integer", "float": "a number", "bool": "true or false",
          "str": "a string", "dict": "a JSON object"}


def _path(c: dict) -> str:
    return getattr(c, "path", "config.json")


def _field(c: dict, key: str, kind: str, default=_REQUIRED):
    """config.json's `key`, checked to be of `kind`; a missing required key or a value of another
    type is a ValueError naming the file and the key. None passes when it is the default."""
    path = _path(c)
    if key not in c or (c[key] is None and default is not _REQUIRED):
        if default is _REQUIRED:
            needer = c.get("model_type") or "this model"
            raise ValueError(f"{path}: the config has no {key!r}, which {needer} needs")
        return default
    v = c[key]
    ok = {"int": lambda: isinstance(v, int) and not isinstance(v, bool),
          "int>0": lambda: isinstance(v, int) and not isinstance(v, bool) and v > 0,
          "float": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
          "bool": lambda: isinstance(v, bool), "str": lambda: isinstance(v, str),
          "dict": lambda: isinstance(v, dict)}[kind]()
    if not ok:
        raise ValueError(f"{path}: {key} is {v!r}; expected {_KINDS[kind]}")
    return float(v) if kind == "float" else v


def _gpt2_config(c: dict, overrides: dict) -> GPTConfig:
    if _field(c, "add_cross_attention", "bool", False):
        raise ValueError("GPT-2 with cross-attention is not supported (add_cross_attention=true)")
    if (_field(c, "scale_attn_by_inverse_layer_idx", "bool", False)
            or not _field(c, "scale_attn_weights", "bool", True)):
        raise ValueError("GPT-2 attention scaling options other than 1/sqrt(head_dim) are not supported")
    kw = dict(vocab_size=_field(c, "vocab_size", "int>0"),
              block_size=_field(c, "n_positions", "int>0", _field(c, "n_ctx", "int>0", 1024)),
              n_layer=_field(c, "n_layer", "int>0"), n_head=_field(c, "n_head", "int>0"),
              n_embd=_field(c, "n_embd", "int>0"), n_inner=_field(c, "n_inner", "int>0", None),
              layer_norm_eps=_field(c, "layer_norm_epsilon", "float", 1e-5),
              activation=_field(c, "activation_function", "str", "gelu_new"),
              tie_word_embeddings=_field(c, "tie_word_embeddings", "bool", True), dropout=0.0)
    kw.update(overrides)
    return GPTConfig(**kw)


def _rope(c: dict) -> tuple[float, dict | None]:
    """(rope_theta, rope_scaling) read as transformers 5 reads a Llama config.json: a `rope_scaling`
    dict, when present, replaces `rope_parameters` whole (its rope_theta then comes from the top-level
    rope_theta, else 10000); a top-level original_max_position_embeddings wins for llama3."""
    key = "rope_scaling" if c.get("rope_scaling") else "rope_parameters"
    params = dict(_field(c, key, "dict", {}))
    theta = params.pop("rope_theta", None)
    if theta is None:
        theta = _field(c, "rope_theta", "float", 10000.0)
    elif isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise ValueError(f"{_path(c)}: {key}.rope_theta is {theta!r}; expected a number")
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind in ("llama3", "yarn", "longrope") and "original_max_position_embeddings" in c:
        params["original_max_position_embeddings"] = c["original_max_position_embeddings"]
    if "partial_rotary_factor" in c:
        params.setdefault("partial_rotary_factor", c["partial_rotary_factor"])
    try:
        scaling = check_rope_scaling({**params, "rope_type": kind},
                                     _field(c, "max_position_embeddings", "int>0", 2048))
    except (ValueError, NotImplementedError) as e:
        raise type(e)(f"{_path(c)}: {key}: {e}") from None
    return float(theta), scaling


def _llama_config(c: dict, overrides: dict) -> LlamaConfig:
    if _field(c, "hidden_act", "str", "silu") != "silu":
        raise ValueError(f"Llama with hidden_act={c['hidden_act']!r} is not supported (SwiGLU uses silu)")
    theta, scaling = _rope(c)
    heads = _field(c, "num_attention_heads", "int>0")
    kw = dict(vocab_size=_field(c, "vocab_size", "int>0"), hidden_size=_field(c, "hidden_size", "int>0"),
              intermediate_size=_field(c, "intermediate_size", "int>0"),
              num_hidden_layers=_field(c, "num_hidden_layers", "int>0"), num_attention_heads=heads,
              num_key_value_heads=_field(c, "num_key_value_heads", "int>0", heads),
              head_dim=_field(c, "head_dim", "int>0", None),
              max_position_embeddings=_field(c, "max_position_embeddings", "int>0", 2048),
              rope_theta=theta, rope_scaling=scaling, rms_norm_eps=_field(c, "rms_norm_eps", "float", 1e-6),
              tie_word_embeddings=_field(c, "tie_word_embeddings", "bool", False),
              attention_bias=_field(c, "attention_bias", "bool", False),
              mlp_bias=_field(c, "mlp_bias", "bool", False))
    kw.update(overrides)
    return LlamaConfig(**kw)


def _bert_config(c: dict, overrides: dict) -> BertConfig:
    if _field(c, "position_embedding_type", "str", "absolute") != "absolute":
        raise ValueError(f"BERT position_embedding_type {c['position_embedding_type']!r} is not supported")
    kinds = {"int": "int", "float": "float", "str": "str"}  # BertConfig's field annotations
    kw = {f.name: _field(c, f.name, kinds[f.type], f.default) for f in fields(BertConfig) if f.name in c}
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
            name = name.replace("LayerNorm.gamma", "LayerNorm.weight")
            name = name.replace("LayerNorm.beta", "LayerNorm.bias")
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
def _read_json(path: str, what: str) -> dict:
    """A JSON object from `path`; an unreadable, empty or non-object file is a ValueError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not a valid {what} (invalid JSON: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a valid {what} (a JSON {type(data).__name__}, not an object)")
    return data


def _read_weights(folder: str) -> dict[str, np.ndarray]:
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(single):
        return read_safetensors(single)[0]
    if os.path.isfile(index):
        weight_map = _read_json(index, "safetensors index").get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ValueError(f"{index}: 'weight_map' is missing or not an object of tensor name -> shard")
        weights: dict = {}
        found_in: dict = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = os.path.join(folder, shard)
            if not os.path.isfile(shard_path):
                raise FileNotFoundError(f"{index} names the shard {shard!r}, which is not in {folder}")
            for name, w in read_safetensors(shard_path)[0].items():
                if name in weights:  # which copy is right cannot be told: refuse rather than let one win
                    raise ValueError(f"{folder}: tensor {name!r} is stored twice, in {found_in[name]} "
                                     f"and in {shard}")
                weights[name], found_in[name] = w, shard
        missing = set(weight_map) - set(weights)
        if missing:
            raise ValueError(f"{index} lists tensors its shards do not hold: {sorted(missing)[:5]}")
        return weights
    if os.path.exists(os.path.join(folder, "pytorch_model.bin")):
        raise ValueError(f"{folder} holds only pytorch_model.bin; tinyml reads safetensors (convert it with "
                         "transformers: model.save_pretrained(folder, safe_serialization=True))")
    raise FileNotFoundError(f"{folder} holds no weights: looked for model.safetensors and "
                            "model.safetensors.index.json (with its shards)")


def read_config(folder: str) -> dict:
    """config.json of a Hugging Face format folder as a dict (a missing folder or file is a
    FileNotFoundError, an invalid one a ValueError, each naming the path)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder!r} is not a folder; from_pretrained reads a Hugging Face format "
                                "folder from disk (config.json + model.safetensors) and downloads nothing")
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config.json in {folder} (from_pretrained looks for config.json and "
                                "model.safetensors or model.safetensors.index.json)")
    return _Config(_read_json(path, "config.json"), path)


def _architecture(c: dict) -> str:
    archs = c.get("architectures") or []
    if not isinstance(archs, list):
        raise ValueError(f"{_path(c)}: architectures is {archs!r}; expected a list of class names")
    for a in archs:
        if a in _ARCHS:
            return a
    if c.get("model_type") in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[c["model_type"]]
    raise ValueError(f"unsupported architecture {archs or c.get('model_type')!r}; "
                     f"tinyml loads {', '.join(_ARCHS)}")


def _state_for(folder: str, weights: dict[str, np.ndarray], model) -> dict:
    """Checkpoint arrays as tensors for model.load_state_dict: floating ones converted to the
    dtype of the model's entry (the same cast model.to(dtype) makes), integer and bool ones kept
    exactly (as transformers keeps int/bool buffers); a floating/non-floating mix-up is an error."""
    state = {}
    for k, current in model.state_dict().items():
        w = tinyml.from_numpy(weights[k])  # read_safetensors's arrays are our own: no copy
        if w.dtype.is_floating_point != current.dtype.is_floating_point:
            raise ValueError(f"{folder}: tensor {k!r} is {w.dtype} in the checkpoint, but the model holds it "
                             f"as {current.dtype}")
        state[k] = w.to(current.dtype) if w.dtype.is_floating_point else w
    return state


def from_pretrained(folder: str, dtype=None, device=None, **overrides):
    """The tinyml model for a Hugging Face folder, weights loaded, in eval mode. Floating-point
    parameters are float32, or `dtype` (e.g. tinyml.bfloat16: what model.to(dtype) gives); integer
    and bool buffers keep their dtype. `overrides` replace config fields (e.g. dropout=0.1)."""
    c = read_config(folder)
    arch = _architecture(c)
    _, make_config, model_cls = _ARCHS[arch]
    cfg = make_config(c, overrides)
    model = model_cls(cfg)
    if dtype is not None:
        model.to(dtype=dtype)  # parameters first, so each checkpoint tensor is cast once, straight to dtype
    weights = _hf_to_tinyml(arch, cfg, _read_weights(folder))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{folder}: weights do not match {arch}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for k, shape in expected.items():
        if tuple(weights[k].shape) != shape:
            raise ValueError(f"{folder}: {k} has shape {tuple(weights[k].shape)}, the config implies {shape}")
    model.load_state_dict(_state_for(folder, weights, model), strict=True)
    if device is not None:
        model.to(device)
    return model.eval()


def _hf_config(model) -> tuple[str, dict]:
    cfg = model.config
    if isinstance(model, GPT):
        if cfg.qk_layernorm:
            raise ValueError("transformers' GPT2 has no qk-layernorm; save this model with tinyml.save")
        return "GPT2LMHeadModel", dict(
            model_type="gpt2", vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
            n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=cfg.n_inner, activation_function=cfg.activation,
            layer_norm_epsilon=cfg.layer_norm_eps, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout, tie_word_embeddings=cfg.tie_word_embeddings, bos_token_id=None,
            eos_token_id=None)
    if isinstance(model, Llama):
        if cfg.qk_layernorm:
            raise ValueError("transformers' Llama has no qk-layernorm; save this model with tinyml.save")
        return "LlamaForCausalLM", dict(
            model_type="llama", vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
            head_dim=cfg.head_dim, max_position_embeddings=cfg.max_position_embeddings, hidden_act="silu",
            rope_theta=cfg.rope_theta,
            rope_parameters={"rope_type": "default", **(cfg.rope_scaling or {}),
                             "rope_theta": cfg.rope_theta},
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
    tmp = os.path.join(folder, f"model.safetensors.tmp{os.getpid()}")
    write_safetensors(tmp, _tinyml_to_hf(arch, model.config, state), metadata={"format": "pt"})
    os.replace(tmp, os.path.join(folder, "model.safetensors"))
    dtypes = {str(v.dtype).split(".")[-1] for v in model.state_dict().values()}
    c = {"architectures": [arch], "dtype": dtypes.pop() if len(dtypes) == 1 else "float32", **c}
    tmp = os.path.join(folder, f"config.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(c, f, indent=2)
    os.replace(tmp, os.path.join(folder, "config.json"))
