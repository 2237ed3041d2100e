"""Tokenizers: characters, and byte-level BPE through the `tokenizers` package.

    tok = CharTokenizer.from_text(text)          # one id per distinct character, sorted
    tok = BPETokenizer.train([text], vocab_size=512)
    ids = tok.encode("To be"); tok.decode(ids)
    tok.save("tokenizer.json"); load_tokenizer("tokenizer.json")   # either kind
    load_tokenizer("path/to/hf_model_folder")    # a Hugging Face tokenizer.json

The char tokenizer's file is a small JSON of its own ({"tinyml_tokenizer": "char", "chars": ...});
the BPE tokenizer's file is the standard Hugging Face tokenizer.json, readable by transformers.
"""
from __future__ import annotations

import json
import operator
import os
from typing import Iterable

BYTE_ALPHABET = 256  # a byte-level BPE starts from one token per byte value
DEFAULT_SPECIAL_TOKENS = ("<|endoftext|>",)
# tokenizers' BpeTrainer reserves memory in proportion to vocab_size before it looks at the text
# (2**28 takes a second and gigabytes; 10**9 aborts the whole interpreter when the allocation
# fails), so the size is bounded here. 2**20 is four times the largest byte-level BPE vocabulary
# in use (Gemma's 256k); a corpus rarely supports even a fraction of it, and the trainer then
# stops early with fewer tokens, which is harmless.
MAX_BPE_VOCAB = 2**20


class CharTokenizer:
    """Character-level tokenizer: id i is the i-th character of `chars`."""

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        self.chars = list(chars)
        if not self.chars:
            raise ValueError("CharTokenizer: the character set is empty (no text to build it from)")
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer: every entry of chars must be one character")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("CharTokenizer: chars has duplicates")
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in this tokenizer's vocabulary "
                             f"of {self.vocab_size} characters") from None

    def decode(self, ids: Iterable[int]) -> str:
        chars, n = self.chars, len(self.chars)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise ValueError(f"token id {i} is out of range for a vocabulary of {n}")
            out.append(chars[i])
        return "".join(out)

    def save(self, path: str) -> None:
        text = json.dumps({"tinyml_tokenizer": "char", "chars": self.chars}, ensure_ascii=False)
        _atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str) -> CharTokenizer:
        obj = _read_json(path)
        if obj.get("tinyml_tokenizer") != "char":
            raise ValueError(f"{path} is not a tinyml char tokenizer file")
        return cls(obj["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class BPETokenizer:
    """Byte-level BPE (GPT-2's scheme) over a `tokenizers.Tokenizer`: any text encodes, nothing is unknown."""

    kind = "bpe"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str] | str, vocab_size: int = 512,
              special_tokens: tuple[str, ...] = DEFAULT_SPECIAL_TOKENS,
              min_frequency: int = 2) -> BPETokenizer:
        """Learn merges on `texts` until the vocabulary holds `vocab_size` tokens
        (256 byte tokens + special tokens + merges); `vocab_size_range(special_tokens)` is what it accepts."""
        special_tokens = _check_special_tokens(special_tokens)
        lo, hi = cls.vocab_size_range(special_tokens)
        vocab_size, min_frequency = _as_int(vocab_size, "vocab_size"), _as_int(min_frequency, "min_frequency")
        if not lo <= vocab_size <= hi:
            size = "too small" if vocab_size < lo else "too large"
            raise ValueError(f"vocab_size {vocab_size} is {size}: byte-level BPE takes {lo} (256 bytes + "
                             f"{len(special_tokens)} special) to {hi}")
        if not 0 <= min_frequency < 2**64:  # the trainer stores it as a u64
            raise ValueError(f"min_frequency must be in [0, 2**64), got {min_frequency}")
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        alphabet = pre_tokenizers.ByteLevel.alphabet()
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(special_tokens), initial_alphabet=alphabet,
                                      show_progress=False)
        if isinstance(texts, str):
            texts = [texts]
        tok.train_from_iterator(_chunks(texts), trainer=trainer)
        return cls(tok)

    @staticmethod
    def vocab_size_range(special_tokens: tuple[str, ...] = DEFAULT_SPECIAL_TOKENS) -> tuple[int, int]:
        """(smallest, largest) vocab_size that `train` accepts."""
        return BYTE_ALPHABET + len(special_tokens), MAX_BPE_VOCAB

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

    def save(self, path: str) -> None:
        _atomic_write_text(path, self.tokenizer.to_str(pretty=False))

    @classmethod
    def load(cls, path: str) -> BPETokenizer:
        from tokenizers import Tokenizer

        path = _tokenizer_file(path)
        try:
            return cls(Tokenizer.from_file(path))
        except Exception as e:  # the Rust parser's message is precise but long; keep its first line
            raise ValueError(f"cannot read tokenizer {path}: {str(e).splitlines()[0]}") from None

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def load_tokenizer(path: str) -> CharTokenizer | BPETokenizer:
    """A tokenizer from a file written by `save`, or from a folder holding tokenizer.json
    (a tinyml run directory or a Hugging Face model folder)."""
    path = _tokenizer_file(path)
    obj = _read_json(path)
    if obj.get("tinyml_tokenizer") == "char":
        return CharTokenizer(obj["chars"])
    if "model" in obj:
        return BPETokenizer.load(path)
    raise ValueError(f"{path}: not a tokenizer file (neither tinyml's char format nor a Hugging Face "
                     "tokenizer.json)")


def _tokenizer_file(path: str) -> str:
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no tokenizer file at {path}")
    return path


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _as_int(x, name: str) -> int:
    if isinstance(x, bool):
        raise TypeError(f"{name} must be an integer, got {x!r}")
    try:
        return operator.index(x)  # int, numpy integers; not floats
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {x!r}") from None


def _check_special_tokens(special_tokens) -> tuple[str, ...]:
    if isinstance(special_tokens, str) or not isinstance(special_tokens, (tuple, list)):
        raise TypeError(f"special_tokens must be a tuple or list of strings, got {special_tokens!r}")
    bad = [t for t in special_tokens if not isinstance(t, str) or not t]
    if bad:
        raise ValueError(f"special_tokens must be non-empty strings, got {bad!r}")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens has duplicates: {list(special_tokens)!r}")
    return tuple(special_tokens)


def _chunks(texts: Iterable[str], size: int = 1 << 16):
    # The trainer pre-tokenizes each item; megabyte-long strings are fine but chunking keeps memory flat.
    try:
        texts = iter(texts)
    except TypeError:
        raise TypeError("texts must be a string or an iterable of strings, "
                        f"got {type(texts).__name__}") from None
    for t in texts:
        if not isinstance(t, str):
            raise TypeError("texts must be a string or an iterable of strings; "
                            f"one item is a {type(t).__name__}")
        i = 0
        while i < len(t):
            j = min(len(t), i + size)
            k = t.rfind("\n", i, j) if j < len(t) else -1
            j = k + 1 if k > i else j  # cut at a line end so no word is split in two
            yield t[i:j]
            i = j


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
