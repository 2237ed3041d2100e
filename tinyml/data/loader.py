"""Map-style datasets and a DataLoader with PyTorch's names (torch.utils.data).

    ds = TensorDataset(x, y)
    for xb, yb in DataLoader(ds, batch_size=32, shuffle=True, seed=0, drop_last=True): ...

Shuffling draws a permutation per epoch from a numpy generator: `generator=` (np.random.Generator)
when given, else one seeded by `seed`, else tinyml's global generator (so `tinyml.manual_seed`
makes the order reproducible, as torch.manual_seed does for torch's DataLoader).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np


class Dataset:
    """A map-style dataset: `__getitem__(i)` and `__len__`."""

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Samples are the i-th rows of each tensor (or array); all share the first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = len(tensors[0])
        sizes = [len(t) for t in tensors]
        if any(s != n for s in sizes):
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dims {sizes}")
        self.tensors = tensors

    def __getitem__(self, index: int):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


def default_collate(batch: list) -> Any:
    """Stack a list of samples: Tensors and arrays along a new dim 0, numbers into a 1-d tensor,
    tuples/lists/dicts element-wise; strings stay a list."""
    import tinyml

    first = batch[0]
    if isinstance(first, tinyml.Tensor):
        shapes = {tuple(b.shape) for b in batch}
        if len(shapes) > 1:
            raise ValueError(f"default_collate: samples have different shapes {sorted(shapes)}; pass collate_fn")
        return tinyml.tensor(np.stack([b.numpy() for b in batch]), device=first.device)
    if isinstance(first, np.ndarray):
        shapes = {b.shape for b in batch}
        if len(shapes) > 1:
            raise ValueError(f"default_collate: samples have different shapes {sorted(shapes)}; pass collate_fn")
        return tinyml.tensor(np.stack(batch))
    if isinstance(first, (bool, np.bool_)):
        return tinyml.tensor(np.array(batch, dtype=bool))
    if isinstance(first, numbers.Integral):
        return tinyml.tensor(np.array(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return tinyml.tensor(np.array(batch, dtype=np.float32))
    if isinstance(first, str):
        return list(batch)
    if isinstance(first, dict):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, (tuple, list)):
        n = len(first)
        if any(len(b) != n for b in batch):
            raise ValueError("default_collate: samples are sequences of different lengths")
        return type(first)(default_collate(list(col)) for col in zip(*batch)) if isinstance(first, tuple) \
            else [default_collate(list(col)) for col in zip(*batch)]
    raise TypeError(f"default_collate: don't know how to batch {type(first).__name__}; pass collate_fn")


class DataLoader:
    """Iterate a map-style dataset in batches (PyTorch's DataLoader, single process)."""

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 collate_fn: Callable | None = None, drop_last: bool = False,
                 generator: np.random.Generator | None = None, seed: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.collate_fn = collate_fn or default_collate
        self.drop_last = drop_last
        if generator is None and seed is not None:
            generator = np.random.Generator(np.random.PCG64(seed))
        self.generator = generator

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        if self.generator is not None:
            return self.generator.permutation(n)
        from tinyml.random import default_generator

        return default_generator().permutation(n)

    def __iter__(self):
        order = self._order()
        B = self.batch_size
        stop = len(order) - len(order) % B if self.drop_last else len(order)
        for i in range(0, stop, B):
            yield self.collate_fn([self.dataset[int(j)] for j in order[i:i + B]])

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
