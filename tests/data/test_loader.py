import numpy as np
import pytest

import tinyml
from tinyml.data import DataLoader, Dataset, TensorDataset, default_collate


class Squares(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"x": np.array([i, i * i], dtype=np.float32), "label": i % 3, "name": f"n{i}"}


def test_batches_collate_and_drop_last():
    loader = DataLoader(Squares(), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    b = batches[0]
    assert b["x"].shape == (4, 2) and b["x"].dtype == tinyml.float32
    assert b["label"].dtype == tinyml.int64 and b["label"].tolist() == [0, 1, 2, 0]
    assert b["name"] == ["n0", "n1", "n2", "n3"]
    assert batches[-1]["x"].shape == (2, 2)
    dl = DataLoader(Squares(), batch_size=4, drop_last=True)
    assert len(dl) == 2 and [bb["x"].shape[0] for bb in dl] == [4, 4]


def test_shuffle_is_seeded_and_a_permutation():
    ds = TensorDataset(np.arange(20), np.arange(20) * 2)
    order = lambda dl: [int(v) for xb, _ in dl for v in xb.tolist()]  # noqa: E731
    a = order(DataLoader(ds, batch_size=3, shuffle=True, seed=1))
    b = order(DataLoader(ds, batch_size=3, shuffle=True, seed=1))
    c = order(DataLoader(ds, batch_size=3, shuffle=True, seed=2))
    assert a == b and a != c and sorted(a) == list(range(20))
    dl = DataLoader(ds, batch_size=3, shuffle=True, generator=np.random.default_rng(0))
    assert order(dl) != order(dl)  # a new permutation each epoch
    tinyml.manual_seed(5)
    d1 = order(DataLoader(ds, batch_size=3, shuffle=True))
    tinyml.manual_seed(5)
    assert order(DataLoader(ds, batch_size=3, shuffle=True)) == d1
    xb, yb = next(iter(DataLoader(ds, batch_size=5)))
    assert yb.tolist() == [0, 2, 4, 6, 8]


def test_collate_tensors_and_custom_collate():
    ds = TensorDataset(tinyml.randn(6, 3), tinyml.arange(6))
    xb, yb = next(iter(DataLoader(ds, batch_size=6)))
    assert xb.shape == (6, 3) and yb.tolist() == list(range(6))
    dl = DataLoader(ds, batch_size=2, collate_fn=lambda batch: len(batch))
    assert list(dl) == [2, 2, 2]


def test_errors():
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size=0"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
