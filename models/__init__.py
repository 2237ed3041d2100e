"""tinyml.models: transformers (GPT, Llama-style, BERT), state space models, adapters, detection heads.

Installed as `tinyml.models` (setup.py's package_dir); code here imports `tinyml...`.

    from tinyml.models import GPT, GPTConfig, generate, from_pretrained
    model = GPT(GPTConfig(vocab_size=65))
    tokens = generate(model, [0], max_new_tokens=100, temperature=0.8, top_k=40)
    hf = from_pretrained("folder/with/config.json")   # GPT2LMHeadModel, LlamaForCausalLM, BertForMaskedLM
"""
from .bert import BertConfig, BertForMaskedLM, BertModel, mask_tokens
from .generate import generate, sample_next
from .gpt import GPT, GPTConfig
from .hf import from_pretrained, save_pretrained
from .layers import KVCache
from .llama import Llama, LlamaConfig

__all__ = ["BertConfig", "BertForMaskedLM", "BertModel", "mask_tokens", "generate", "sample_next", "GPT", "GPTConfig",
           "from_pretrained", "save_pretrained", "KVCache", "Llama", "LlamaConfig"]
