import json
import subprocess
import sys

import numpy as np
import pytest

from tinyml.data import BPETokenizer, CharTokenizer, load_tokenizer, shakespeare


def test_char_roundtrip_and_save_load(tmp_path):
    text = "Hello, world!\nzz"
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == len(set(text))
    assert tok.chars == sorted(set(text))
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    path = str(tmp_path / "tok.json")
    tok.save(path)
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, CharTokenizer) and loaded.chars == tok.chars
        assert loaded.encode(text) == ids


def test_char_errors():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="'z' is not in this tokenizer's vocabulary of 3"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="token id 7 is out of range for a vocabulary of 3"):
        tok.decode([0, 7])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")


def test_bpe_train_vocab_size_roundtrip(tmp_path):
    text = shakespeare("train")[:200_000]
    tok = BPETokenizer.train(text, vocab_size=400)
    assert tok.vocab_size == 400
    sample = "To be, or not to be: that is the question. Ünïcödé ✓\n"
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample  # byte-level: nothing is unknown
    assert len(ids) < len(sample.encode())  # merges compress
    assert max(ids) < 400
    tok.save(str(tmp_path / "tokenizer.json"))
    back = load_tokenizer(str(tmp_path))  # a folder holding tokenizer.json
    assert isinstance(back, BPETokenizer) and back.encode(sample) == ids
    with pytest.raises(ValueError, match="vocab_size 100 is too small: byte-level BPE takes 257"):
        BPETokenizer.train(text, vocab_size=100)
    assert BPETokenizer.train(text[:5000], vocab_size=np.int64(260)).vocab_size == 260  # numpy ints are ints


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(vocab_size=2**20 + 1), ValueError, "vocab_size 1048577 is too large: byte-level BPE takes 257 .* "
                                             "to 1048576"),
    (dict(vocab_size=-5), ValueError, "vocab_size -5 is too small"),
    (dict(vocab_size=300.5), TypeError, "vocab_size must be an integer, got 300.5"),
    (dict(vocab_size=True), TypeError, "vocab_size must be an integer, got True"),
    (dict(special_tokens=("<a>", "<b>", "<c>"), vocab_size=258), ValueError, "takes 259 .*3 special"),
    (dict(min_frequency=-1), ValueError, "min_frequency must be in \\[0, 2\\*\\*64\\), got -1"),
    (dict(min_frequency=2**70), ValueError, "min_frequency must be in"),
    (dict(special_tokens="<s>"), TypeError, "special_tokens must be a tuple or list of strings, got '<s>'"),
    (dict(special_tokens=("<s>", "<s>")), ValueError, "special_tokens has duplicates"),
    (dict(special_tokens=("<s>", "")), ValueError, "special_tokens must be non-empty strings, got \\[''\\]"),
    (dict(texts=5), TypeError, "texts must be a string or an iterable of strings, got int"),
    (dict(texts=["ok", None]), TypeError, "one item is a NoneType"),
])
def test_bpe_train_validates_its_arguments(kwargs, error, message):
    kwargs = {"texts": "hello world, hello tokenizers\n" * 20, "vocab_size": 300, **kwargs}
    with pytest.raises(error, match=message):
        BPETokenizer.train(**kwargs)


def test_huge_vocab_size_is_refused_before_the_tokenizers_library_sees_it():
    # tokenizers aborts the whole interpreter on vocab_size=10**9: run it in a child process so that
    # a regression fails this test instead of killing pytest
    code = ("from tinyml.data import BPETokenizer\n"
            "try:\n    BPETokenizer.train('hello world ' * 50, vocab_size=10**9)\n"
            "except ValueError as e:\n    print('refused:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: vocab_size 1000000000 is too large" in proc.stdout


def test_load_hugging_face_tokenizer_json(tmp_path):
    # A transformers fast tokenizer saved to a folder writes the standard tokenizer.json.
    transformers = pytest.importorskip("transformers")
    bpe = BPETokenizer.train(shakespeare("val"), vocab_size=300)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe.tokenizer, eos_token="<|endoftext|>")
    fast.save_pretrained(str(tmp_path))
    tok = load_tokenizer(str(tmp_path))
    text = "O Romeo, Romeo! wherefore art thou Romeo?"
    assert tok.encode(text) == fast.encode(text, add_special_tokens=False)
    assert tok.decode(tok.encode(text)) == text
    assert tok.token_to_id("<|endoftext|>") == fast.eos_token_id


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        load_tokenizer(str(tmp_path))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_tokenizer(str(tmp_path / "bad.json"))
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a tokenizer file"):
        load_tokenizer(str(tmp_path / "other.json"))
