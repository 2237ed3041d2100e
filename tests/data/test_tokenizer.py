import json

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
    with pytest.raises(ValueError, match="too small"):
        BPETokenizer.train(text, vocab_size=100)


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
