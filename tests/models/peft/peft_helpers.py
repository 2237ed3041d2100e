"""Small tinyml models and helpers shared by the peft tests."""
import numpy as np
from tinyml.models import GPT, BertConfig, BertForMaskedLM, GPTConfig, Llama, LlamaConfig

import tinyml


def gpt(tied: bool = True) -> GPT:
    tinyml.manual_seed(1)
    return GPT(GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=32,
                         tie_word_embeddings=tied)).eval()


def llama(tied: bool = True) -> Llama:
    tinyml.manual_seed(2)
    return Llama(LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                             tie_word_embeddings=tied)).eval()


def bert() -> BertForMaskedLM:
    tinyml.manual_seed(3)
    cfg = BertConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=48, max_position_embeddings=32)
    return BertForMaskedLM(cfg).eval()


def ids(model, batch: int = 2, length: int = 8):
    rng = np.random.default_rng(5)
    return tinyml.tensor(rng.integers(0, 61, size=(batch, length)), dtype=tinyml.int64)


def logits_of(model, idx) -> np.ndarray:
    with tinyml.no_grad():
        out = model(idx)
    logits = out[0] if isinstance(out, tuple) else out
    return logits.float().numpy().copy()


def randomise_lora(model, std: float = 0.1) -> None:
    """Give every LoRA B (and R) a non-zero value so the update is visible."""
    rng = np.random.default_rng(7)
    with tinyml.no_grad():
        for name, p in model.named_parameters():
            if any(part in ("lora_B", "lora_R") for part in name.split(".")):
                p.copy_(tinyml.tensor(rng.normal(0, std, p.shape), dtype=p.dtype))
