"""The corpus that ships with tinyml: eight Shakespeare plays (about 1 MB of text, xz-compressed).

    text = tinyml.data.shakespeare()            # the whole text
    train, val = tinyml.data.shakespeare_split() # first 90% / last 10%, always the same cut

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


def shakespeare(split: str | None = None) -> str:
    """The embedded Shakespeare text: `split=None` the whole of it, "train" the first 90%,
    "val" the last 10%."""
    text = _shakespeare_text()
    if split is None:
        return text
    if split not in ("train", "val"):
        raise ValueError(f"shakespeare: split must be None, 'train' or 'val', got {split!r}")
    train, val = split_text(text)
    return train if split == "train" else val


def shakespeare_split(val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val) of the embedded Shakespeare text."""
    return split_text(_shakespeare_text(), val_fraction)


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
