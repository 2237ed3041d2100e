"""DistributedSampler: each rank reads a disjoint shard of a dataset's indices
(torch.utils.data.distributed.DistributedSampler).

With N items and W ranks every rank gets S = ceil(N / W) indices (drop_last: floor(N / W)); the
index list is padded with its own first items up to S * W (or cut to S * W), and rank r takes
positions r, r + W, r + 2W, ... With shuffle the list is a permutation drawn from a generator
seeded with seed + epoch, the same on every rank, so call set_epoch(epoch) before each epoch.
The permutation comes from numpy's PCG64 (numpy.random.default_rng), not from torch's randperm.
"""
from __future__ import annotations

import math

import numpy as np

from . import _backend


class DistributedSampler:
    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None:
            num_replicas = _backend.group().size
        if rank is None:
            rank = _backend.group().rank
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError("DistributedSampler: num_replicas must be a positive integer, got "
                             f"{num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if not self.drop_last:
            padding = self.total_size - n
            if padding and n:
                indices = np.concatenate([indices, np.resize(indices, padding)])
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next __iter__ shuffles for (the permutation's seed is seed + epoch)."""
        self.epoch = epoch
