"""DataLoader (torch.utils.data.DataLoader): batches from a dataset, in the main process or in
worker processes, with torch's arguments and rules.

    loader = DataLoader(ds, batch_size=32, shuffle=True, generator=g, num_workers=2, drop_last=True)

A map-style dataset is visited in the order of `sampler` (SequentialSampler, or RandomSampler
with shuffle=True), grouped by a BatchSampler unless `batch_sampler` is given; batch_size=None
turns batching off (each sample goes through default_convert). An IterableDataset is batched in
the order it yields. pin_memory is accepted and has no effect (there is no pinned host memory to
use on cpu, and cuda copies go through the driver's own staging).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from ._collate import default_collate, default_convert
from ._worker import MultiProcessIterator
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader"]


class _Fetcher:
    """What a worker (or the main process) does with one batch of indices, or with its stream."""

    def __init__(self, collate_fn: Callable, auto_collation: bool, batch_size: int | None, drop_last: bool):
        self.collate_fn, self.auto_collation = collate_fn, auto_collation
        self.batch_size, self.drop_last = batch_size, drop_last

    def fetch(self, dataset, indices):
        if not self.auto_collation:
            return self.collate_fn(dataset[indices])
        if hasattr(dataset, "__getitems__"):
            return self.collate_fn(dataset.__getitems__(indices))
        return self.collate_fn([dataset[i] for i in indices])

    def iterate(self, dataset):
        it = iter(dataset)
        if not self.auto_collation:
            for sample in it:
                yield self.collate_fn(sample)
            return
        while True:
            batch = list(itertools.islice(it, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield self.collate_fn(batch)


class DataLoader:
    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable | None = None, batch_sampler: Iterable | None = None,
                 num_workers: int = 0, collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable | None = None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "") -> None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers option should be non-negative; use num_workers=0 to disable "
                             f"multiprocessing, got {num_workers}")
        if timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. let "
                             "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to "
                             f"None (got num_workers=0, prefetch_factor={prefetch_factor})")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        self._is_iterable = isinstance(dataset, IterableDataset)
        if self._is_iterable:
            if shuffle not in (None, False):
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler "
                                 f"option, but got batch_sampler={batch_sampler}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with "
                             "drop_last")
        elif batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                                         or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if sampler is None and not self._is_iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self._is_iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.timeout, self.worker_init_fn = num_workers, timeout, worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers > 0 else prefetch_factor
        self.persistent_workers = persistent_workers
        self.pin_memory, self.pin_memory_device = pin_memory, pin_memory_device
        self._auto_collation = batch_sampler is not None or (self._is_iterable and batch_size is not None)
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._workers_iterator = None

    def _index_batches(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _fetcher(self) -> _Fetcher:
        return _Fetcher(self.collate_fn, self._auto_collation, self.batch_size, self.drop_last)

    def __iter__(self):
        if self.num_workers == 0:
            return self._single_process()
        if self.persistent_workers and self._workers_iterator is not None:
            self._workers_iterator.reset()
            return self._workers_iterator
        it = MultiProcessIterator(self, self._fetcher())
        if self.persistent_workers:
            self._workers_iterator = it
        return it

    def _single_process(self):
        fetcher = self._fetcher()
        if self._is_iterable:
            yield from fetcher.iterate(self.dataset)
            return
        for indices in self._index_batches():
            yield fetcher.fetch(self.dataset, indices)

    def __len__(self) -> int:
        if self._is_iterable:
            n = len(self.dataset)  # a TypeError for a stream without __len__, as in torch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_batches())

    def __del__(self):
        it = getattr(self, "_workers_iterator", None)  # absent when __init__ raised
        if it is not None:
            it.shutdown()
