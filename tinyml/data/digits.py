"""The 8x8 handwritten digits that ship with tinyml (UCI via scikit-learn; corpus/NOTICE.digits).

    images, labels = tinyml.data.load_digits()   # (1797, 8, 8) float32 in [0, 16], (1797,) int64
    (x_tr, y_tr), (x_te, y_te) = tinyml.data.digits_split(test_fraction=0.2, seed=0)

The same data as `sklearn.datasets.load_digits()`, so results compare with the papers and tutorials
that use it (DARTS, certified training and the small-data ViT demonstrations read it from here).
"""
from __future__ import annotations

import functools
import gzip
import os

import numpy as np

DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "digits.csv.gz")


@functools.lru_cache(maxsize=1)
def _digits_table() -> np.ndarray:
    if not os.path.exists(DIGITS_PATH):
        raise FileNotFoundError(f"the embedded digits data {DIGITS_PATH} is missing; reinstall tinyml "
                                "(package_data 'corpus/*' in setup.py ships it)")
    with gzip.open(DIGITS_PATH, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise ValueError(f"{DIGITS_PATH} holds a {table.shape} table, expected (1797, 65)")
    table.setflags(write=False)
    return table


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images, labels): images (1797, 8, 8) float32 with pixel counts 0..16, labels (1797,) int64."""
    table = _digits_table()
    return table[:, :64].reshape(-1, 8, 8).astype(np.float32), table[:, 64].copy()


def digits_split(test_fraction: float = 0.2, seed: int = 0):
    """A seeded, stratified split: ((x_train, y_train), (x_test, y_test)), images scaled to [0, 1].

    Every class keeps the same share in both parts (as sklearn's train_test_split with stratify)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = load_digits()
    images = images / np.float32(16.0)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test[members[:int(round(len(members) * test_fraction))]] = True
    return (images[~test], labels[~test]), (images[test], labels[test])
