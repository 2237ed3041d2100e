"""Transformers: GPT-2 (gpt.py), Llama (llama.py) and BERT with its masked-LM head (bert.py), each with
its Hugging Face adapter at the end of its file; their shared blocks (layers.py: KV cache, attention,
rotary embeddings, LM head and loss, initialisation) and sampling with or without the cache
(generate.py). Importing this package registers GPT2LMHeadModel, LlamaForCausalLM and BertForMaskedLM
with tinyml.models.hf.
"""
from .bert import BertConfig, BertForMaskedLM, BertModel, mask_tokens
from .generate import generate, sample_next
from .gpt import GPT, GPTConfig
from .layers import KVCache
from .llama import Llama, LlamaConfig

__all__ = ["BertConfig", "BertForMaskedLM", "BertModel", "mask_tokens", "generate", "sample_next", "GPT",
           "GPTConfig", "KVCache", "Llama", "LlamaConfig"]
