"""Token datasets: token ids in a flat uint16/uint32 file, memory-mapped, and a random-window sampler.

    write_tokens("train.bin", ids, vocab_size=65)   # uint16 when the vocabulary fits, else uint32
    data = load_tokens("train.bin")                 # np.memmap, read-only, nothing loaded up front
    sampler = RandomWindowSampler(data, block_size=64, batch_size=12, seed=0)
    x, y = sampler.next_batch()                     # (B, T) int64 arrays, y = x shifted by one

The sampler's state (its generator and the number of batches drawn) goes into checkpoints, so a
resumed run sees exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np


def _little(dt: np.dtype) -> np.dtype:
    # files are little-endian; on little-endian hosts keep the canonical (native) dtype object
    return dt if sys.byteorder == "little" else dt.newbyteorder("<")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids below `vocab_size`."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    if vocab_size <= 1 << 32:
        return np.dtype(np.uint32)
    raise ValueError(f"vocab_size {vocab_size} does not fit in uint32")


def write_tokens(path: str, ids, vocab_size: int) -> np.memmap:
    """Write `ids` to `path` as raw little-endian uint16/uint32 (with a `path`.json sidecar naming
    the dtype and vocabulary size) and return it memory-mapped."""
    dtype = _little(token_dtype(vocab_size))
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"write_tokens: expected a 1-d sequence of ids, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("write_tokens: no tokens to write (the text is empty)")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"write_tokens: ids span [{lo}, {hi}] but vocab_size is {vocab_size}")
    tmp = f"{path}.tmp{os.getpid()}"
    mm = np.memmap(tmp, dtype=dtype, mode="w+", shape=(arr.size,))
    mm[:] = arr
    mm.flush()
    del mm
    os.replace(tmp, path)
    meta = {"dtype": dtype.name, "count": int(arr.size), "vocab_size": int(vocab_size)}
    with open(path + ".json", "w") as f:
        json.dump(meta, f)
    return load_tokens(path)


def load_tokens(path: str, dtype=None) -> np.memmap:
    """A token file as a read-only memmap; the dtype comes from the sidecar json unless given."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no token file at {path}")
    if dtype is None:
        side = path + ".json"
        if not os.path.exists(side):
            raise ValueError(f"{path}: no {side} naming its dtype; pass dtype=np.uint16 or np.uint32")
        with open(side) as f:
            dtype = json.load(f)["dtype"]
    dtype = _little(np.dtype(dtype))
    size = os.path.getsize(path)
    if size % dtype.itemsize:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {dtype.name} tokens")
    return np.memmap(path, dtype=dtype, mode="r", shape=(size // dtype.itemsize,))


class RandomWindowSampler:
    """Batches of `batch_size` windows of `block_size + 1` consecutive tokens at uniformly random
    offsets (with replacement), split into inputs x = w[:-1] and targets y = w[1:].

    Deterministic given `seed`: its own numpy generator, independent of tinyml's global one."""

    def __init__(self, data, block_size: int, batch_size: int, seed: int = 0):
        self.data = data
        self.block_size = int(block_size)
        self.batch_size = int(batch_size)
        if self.block_size < 1 or self.batch_size < 1:
            raise ValueError(f"block_size and batch_size must be >= 1, got {block_size} and {batch_size}")
        if len(data) < self.block_size + 1:
            raise ValueError(f"the token data has {len(data)} tokens, fewer than block_size + 1 = "
                             f"{self.block_size + 1}: use a smaller block size or more text")
        self.seed = int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self.batches_drawn = 0

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        T = self.block_size
        starts = self.rng.integers(0, len(self.data) - T, size=self.batch_size)
        # One gather of (B, T+1) from the memmap; the int64 copy is what embeddings and losses take.
        w = np.stack([np.asarray(self.data[s:s + T + 1]) for s in starts]).astype(np.int64)
        self.batches_drawn += 1
        return w[:, :-1], w[:, 1:]

    def __iter__(self):
        return self

    def __next__(self):
        return self.next_batch()

    def state_dict(self) -> dict:
        return {"seed": self.seed, "rng": self.rng.bit_generator.state, "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = int(state["batches_drawn"])
