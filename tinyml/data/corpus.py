"""The corpus that ships with tinyml: eight Shakespeare plays (about 1 MB of text, xz-compressed).

    text = tinyml.data.shakespeare()             # the whole text, plays in file order
    train, val = tinyml.data.shakespeare_split() # the last 10% of every play is validation
    plays = tinyml.data.shakespeare_plays()      # {title: text}

The selection and its license (CC-BY 2.5, attribution to the Open Knowledge Foundation's
`shakespeare` package) are described in corpus/NOTICE beside the data file.
"""
from __future__ import annotations

import functools
import lzma
import os

_CORPUS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SHAKESPEARE_PATH = os.path.join(_CORPUS_DIR, "shakespeare.txt.xz")


@functools.lru_cache(maxsize=1)
def _shakespeare_text() -> str:
    if not os.path.exists(SHAKESPEARE_PATH):
        raise FileNotFoundError(f"the embedded corpus {SHAKESPEARE_PATH} is missing; reinstall tinyml "
                                "(package_data 'corpus/*' in setup.py ships it)")
    with lzma.open(SHAKESPEARE_PATH, "rb") as f:
        return f.read().decode("utf-8")


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Cut `text` into (train, val): the last `val_fraction` of characters is validation.

    A contiguous tail (not a random sample of lines) keeps validation text unseen in context,
    as nanoGPT's shakespeare_char split does; the cut is deterministic."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


# The plays in file order; each begins with its title line and "by William Shakespeare".
PLAY_TITLES = ("HAMLET, PRINCE OF DENMARK", "MACBETH", "THE TRAGEDY OF KING LEAR", "OTHELLO, THE MOOR OF VENICE",
               "ROMEO AND JULIET", "JULIUS CAESAR", "THE TEMPEST", "A MIDSUMMER NIGHT'S DREAM")


def shakespeare_plays() -> dict[str, str]:
    """{title: text} of the eight plays (the separating blank lines dropped)."""
    text = _shakespeare_text()
    starts = [text.index(t + "\n\nby William Shakespeare") for t in PLAY_TITLES]
    ends = starts[1:] + [len(text)]
    return {t: text[a:b].strip("\n") + "\n" for t, a, b in zip(PLAY_TITLES, starts, ends)}


def shakespeare_split(val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val) of the embedded Shakespeare: the last `val_fraction` of each play is validation.

    Holding out the tail of every play, rather than the tail of the file (which would be one
    comedy), keeps validation text unseen while drawing it from the same eight plays as training."""
    parts = [split_text(play, val_fraction) for play in shakespeare_plays().values()]
    return "\n\n".join(p[0] for p in parts), "\n\n".join(p[1] for p in parts)


def shakespeare(split: str | None = None) -> str:
    """The embedded Shakespeare text: `split=None` the whole of it, "train" or "val" the parts
    of `shakespeare_split()`."""
    if split is None:
        return _shakespeare_text()
    if split not in ("train", "val"):
        raise ValueError(f"shakespeare: split must be None, 'train' or 'val', got {split!r}")
    train, val = shakespeare_split()
    return train if split == "train" else val


def read_text(path: str) -> str:
    """A text file as a string, with errors that say what is wrong (missing, a folder, empty, binary)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"expected a text file, got a directory: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
    if not text.strip():
        raise ValueError(f"{path} is empty: nothing to train on")
    return text
