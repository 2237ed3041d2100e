"""tinyml.data: the embedded Shakespeare corpus and 8x8 digits, tokenizers, token files and data loaders."""
from .corpus import read_text, shakespeare, shakespeare_plays, shakespeare_split, split_text
from .digits import digits_split, load_digits
from .loader import DataLoader, Dataset, TensorDataset, default_collate
from .tokenizer import BPETokenizer, CharTokenizer, load_tokenizer
from .tokens import RandomWindowSampler, load_tokens, token_dtype, write_tokens

__all__ = ["read_text", "shakespeare", "shakespeare_plays", "shakespeare_split", "split_text", "digits_split", "load_digits", "DataLoader", "Dataset",
           "TensorDataset", "default_collate", "BPETokenizer", "CharTokenizer", "load_tokenizer",
           "RandomWindowSampler", "load_tokens", "token_dtype", "write_tokens"]
