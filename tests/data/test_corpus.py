import lzma
import os

import pytest

import tinyml.data as data


def test_shakespeare_is_about_a_megabyte_of_plays():
    text = data.shakespeare()
    assert 900_000 < len(text) < 1_200_000
    assert text.startswith("HAMLET, PRINCE OF DENMARK")
    assert "To be, or not to be" in text
    assert "\r" not in text


def test_plays_and_per_play_split():
    text = data.shakespeare()
    plays = data.shakespeare_plays()
    assert list(plays) == list(data.corpus.PLAY_TITLES)
    assert sum(len(p) for p in plays.values()) > 0.99 * len(text)
    assert all(p.startswith(t) for t, p in plays.items())
    train, val = data.shakespeare_split()
    assert train == data.shakespeare_split()[0]  # deterministic
    assert data.shakespeare("train") == train and data.shakespeare("val") == val
    assert 0.09 < len(val) / (len(train) + len(val)) < 0.11
    for play in plays.values():  # every play's tail is in val, and not in train
        tail = play[-2000:-1]
        assert tail in val and tail not in train
        assert play[:2000] in train
    with pytest.raises(ValueError, match="split must be"):
        data.shakespeare("test")


def test_split_text_takes_the_tail():
    assert data.split_text("abcdefghij", 0.2) == ("abcdefgh", "ij")
    with pytest.raises(ValueError, match="val_fraction"):
        data.split_text("abc", 1.0)


def test_notice_ships_beside_the_corpus():
    folder = os.path.dirname(data.corpus.SHAKESPEARE_PATH)
    notice = open(os.path.join(folder, "NOTICE")).read()
    assert "CC-BY 2.5" in notice and "Open Knowledge Foundation" in notice
    with lzma.open(data.corpus.SHAKESPEARE_PATH) as f:
        assert f.read(5) == b"HAMLE"


def test_read_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.read_text(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        data.read_text(str(tmp_path / "empty.txt"))
    (tmp_path / "bin.txt").write_bytes(b"ok\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        data.read_text(str(tmp_path / "bin.txt"))
    with pytest.raises(IsADirectoryError):
        data.read_text(str(tmp_path))
