import numpy as np
import pytest

import tinyml


def test_load_digits_matches_sklearn():
    datasets = pytest.importorskip("sklearn.datasets")
    images, labels = tinyml.data.load_digits()
    ref = datasets.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    np.testing.assert_array_equal(images, ref.images.astype(np.float32))
    np.testing.assert_array_equal(labels, ref.target)


def test_digits_split_is_stratified_seeded_and_disjoint():
    (xa, ya), (xb, yb) = tinyml.data.digits_split(0.25, seed=3)
    (xa2, _), _ = tinyml.data.digits_split(0.25, seed=3)
    assert len(ya) + len(yb) == 1797 and xa.max() <= 1.0 and xa.min() >= 0.0
    np.testing.assert_array_equal(xa, xa2)
    counts_test, counts_all = np.bincount(yb, minlength=10), np.bincount(tinyml.data.load_digits()[1])
    assert np.all(np.abs(counts_test - 0.25 * counts_all) <= 1)
    rows = {r.tobytes() for r in xa.reshape(len(xa), -1)}
    assert sum(r.tobytes() in rows for r in xb.reshape(len(xb), -1)) < 5  # a few images repeat in UCI


def test_digits_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        tinyml.data.digits_split(1.5)
