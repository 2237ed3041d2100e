"""tinyml.utils.data against torch.utils.data's semantics (orders drawn from seeds may differ from
torch's, so shuffles are tested by their properties)."""
import collections
import os

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import tinyml
from tinyml.utils import data as tmd


def _ds(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return tmd.TensorDataset(tinyml.tensor(x), tinyml.arange(n)), tud.TensorDataset(torch.tensor(x),
                                                                                      torch.arange(n))


def _flat(batches):
    return [[np.asarray(t.numpy()).tolist() for t in b] for b in batches]


@pytest.mark.parametrize("kw", [dict(batch_size=3), dict(batch_size=3, drop_last=True), dict(batch_size=None),
                                dict(batch_size=4, sampler=[9, 1, 5, 3, 2])])
def test_sequential_batches_match_torch(kw):
    ours, theirs = _ds()
    a, b = tmd.DataLoader(ours, **kw), tud.DataLoader(theirs, **kw)
    assert len(a) == len(b)
    assert _flat(a) == _flat(b)


def test_batch_sampler_and_collate_fn():
    ours, theirs = _ds()
    bs = [[0, 1], [7], [3, 4, 5]]
    assert _flat(tmd.DataLoader(ours, batch_sampler=bs)) == _flat(tud.DataLoader(theirs, batch_sampler=bs))
    lengths = list(tmd.DataLoader(ours, batch_size=4, collate_fn=len))
    assert lengths == [4, 4, 2]
    with pytest.raises(ValueError, match="mutually exclusive"):
        tmd.DataLoader(ours, batch_sampler=bs, batch_size=2)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        tmd.DataLoader(ours, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match="batch_size=0"):
        tmd.DataLoader(ours, batch_size=0)


def test_shuffle_with_generator_is_a_reproducible_permutation():
    ours, _ = _ds(20)

    def order(seed):
        g = tinyml.Generator().manual_seed(seed)
        loader = tmd.DataLoader(ours, batch_size=6, shuffle=True, generator=g)
        return [i for _, y in loader for i in y.tolist()]

    assert sorted(order(0)) == list(range(20))
    assert order(0) == order(0) and order(0) != order(1)
    tinyml.manual_seed(5)
    first = [y.tolist() for _, y in tmd.DataLoader(ours, batch_size=20, shuffle=True)]
    tinyml.manual_seed(5)
    assert first == [y.tolist() for _, y in tmd.DataLoader(ours, batch_size=20, shuffle=True)]


def test_default_collate_matches_torch():
    Point = collections.namedtuple("Point", "x y")
    samples = [{"a": 1.5, "b": (np.ones(2, np.float32) * i, i, "s"), "c": np.int32(i), "p": Point(i, True)}
               for i in range(3)]
    ours, theirs = tmd.default_collate(samples), tud.default_collate(samples)
    assert ours["a"].dtype == tinyml.float64 and ours["b"][1].dtype == tinyml.int64
    assert ours["c"].dtype == tinyml.int32 and ours["p"].y.dtype == tinyml.bool
    assert isinstance(ours["b"], list) and isinstance(ours["p"], Point) and ours["b"][2] == ["s"] * 3
    np.testing.assert_array_equal(ours["b"][0].numpy(), theirs["b"][0].numpy())
    np.testing.assert_array_equal(ours["a"].numpy(), theirs["a"].numpy())
    with pytest.raises(RuntimeError, match=r"equal size, but got \[2\] at entry 0 and \[3\] at entry 1"):
        tmd.default_collate([tinyml.zeros(2), tinyml.zeros(3)])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        tmd.default_collate([object()])


def test_random_split_lengths_and_fractions():
    ds = list(range(11))
    parts = tmd.random_split(ds, [0.5, 0.3, 0.2], generator=tinyml.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [len(p) for p in tud.random_split(ds, [0.5, 0.3, 0.2])]
    assert sorted(i for p in parts for i in p) == ds
    a = tmd.random_split(ds, [4, 7], generator=tinyml.Generator().manual_seed(3))
    b = tmd.random_split(ds, [4, 7], generator=tinyml.Generator().manual_seed(3))
    assert list(a[0]) == list(b[0]) and len(a[1]) == 7
    with pytest.raises(ValueError, match=r"Sum of input lengths \(5\) does not equal .* \(11\)"):
        tmd.random_split(ds, [2, 3])


def test_subset_and_concat_match_torch():
    a, b = list(range(3)), list(range(10, 15))
    ours, theirs = tmd.ConcatDataset([a, b]), tud.ConcatDataset([a, b])
    assert len(ours) == len(theirs) and [ours[i] for i in range(-8, 8)] == [theirs[i] for i in range(-8, 8)]
    assert ours.cumulative_sizes == theirs.cumulative_sizes
    with pytest.raises(IndexError):
        ours[8]
    sub = tmd.Subset(b, [4, 0])
    assert [sub[0], sub[1], len(sub)] == [14, 10, 2]


def test_samplers():
    g = tinyml.Generator().manual_seed(0)
    assert list(tmd.SequentialSampler(range(4))) == [0, 1, 2, 3]
    assert sorted(tmd.RandomSampler(range(6), generator=g)) == list(range(6))
    with_repl = list(tmd.RandomSampler(range(3), replacement=True, num_samples=50, generator=g))
    assert len(with_repl) == 50 and set(with_repl) <= {0, 1, 2}
    assert sorted(tmd.SubsetRandomSampler([7, 3, 9], generator=g)) == [3, 7, 9]
    w = list(tmd.WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=g))
    assert 0 not in w and 0.65 < w.count(2) / 400 < 0.85
    assert sorted(tmd.WeightedRandomSampler([1, 1, 1], 3, replacement=False, generator=g)) == [0, 1, 2]
    assert list(tmd.BatchSampler(range(7), 3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(tmd.BatchSampler(range(7), 3, drop_last=False)) == 3
    with pytest.raises(ValueError, match="num_samples=0"):
        tmd.WeightedRandomSampler([1.0], 0)


class _Stream(tmd.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = tmd.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


class _WhoLoads(tmd.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 6:
            raise KeyError(f"bad sample {i}")
        info = tmd.get_worker_info()
        return np.array([i, -1 if info is None else info.id, os.getpid()])


def test_iterable_dataset_single_and_workers():
    assert [b.tolist() for b in tmd.DataLoader(_Stream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    got = [b.tolist() for b in tmd.DataLoader(_Stream(7), batch_size=2, num_workers=2)]
    # torch's order: workers take turns; worker 0 streams 0,2,4,6 and worker 1 streams 1,3,5
    assert got == [[0, 2], [1, 3], [4, 6], [5]]
    with pytest.raises(ValueError, match="shuffle=True"):
        tmd.DataLoader(_Stream(3), shuffle=True)


def test_workers_keep_order_init_fn_and_reraise():
    loader = tmd.DataLoader(tmd.Subset(_WhoLoads(), [0, 1, 2, 3, 4, 5, 7]), batch_size=2, num_workers=2,
                            worker_init_fn=lambda wid: np.random.seed(wid), pin_memory=True)
    batches = [b.numpy() for b in loader]
    assert [r[0] for b in batches for r in b] == [0, 1, 2, 3, 4, 5, 7]
    assert [int(b[0, 1]) for b in batches] == [0, 1, 0, 1]  # batches alternate between the workers
    assert len({int(r[2]) for b in batches for r in b} - {os.getpid()}) == 2
    bad = tmd.DataLoader(_WhoLoads(), batch_size=2, num_workers=2)
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process 1") as err:
        list(bad)
    assert "bad sample 6" in str(err.value) and "Traceback" in str(err.value)


def test_persistent_workers_are_reused_and_shut_down():
    loader = tmd.DataLoader(tmd.Subset(_WhoLoads(), [0, 1, 2, 3]), batch_size=1, num_workers=2,
                            persistent_workers=True)
    first = {int(b[0, 2]) for b in loader}
    second = {int(b[0, 2]) for b in loader}
    assert first == second and len(first) == 2
    procs = loader._workers_iterator._workers
    loader._workers_iterator.shutdown()
    assert not any(p.is_alive() for p in procs)
    one_pass = iter(tmd.DataLoader(tmd.Subset(_WhoLoads(), [0, 1]), batch_size=1, num_workers=1))
    list(one_pass)
    assert not any(p.is_alive() for p in one_pass._workers)
    with pytest.raises(ValueError, match="persistent_workers option needs num_workers > 0"):
        tmd.DataLoader(_WhoLoads(), persistent_workers=True)


def test_import_paths():
    import tinyml.utils.data as via_import

    assert via_import.DataLoader is tinyml.utils.data.DataLoader
    assert tmd.TensorDataset is tinyml.data.TensorDataset  # one class, re-exported


class _UsesKernels(tmd.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        a = tinyml.randn(128, 128)
        return tinyml.nn.functional.softmax(a @ a, -1).sum()


def test_workers_run_cpu_kernels_after_the_parent_used_its_thread_pool():
    """A forked worker entering the parent's OpenMP pool hangs; workers run one thread each (as torch's)."""
    x = tinyml.randn(256, 256)
    tinyml.nn.functional.softmax(x @ x, -1).sum()
    got = [b.tolist() for b in tmd.DataLoader(_UsesKernels(), batch_size=2, num_workers=2, timeout=60)]
    np.testing.assert_allclose(got, [[128.0, 128.0], [128.0, 128.0]], rtol=1e-5)
