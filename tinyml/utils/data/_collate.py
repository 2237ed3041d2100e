"""default_collate and default_convert (torch.utils.data): how a list of samples becomes a batch.

    Tensor / ndarray samples  -> stacked along a new dim 0 (equal shapes required)
    Python float / int / bool -> 1-d float64 / int64 / bool tensor; numpy scalars keep their dtype
    str / bytes               -> the list as is
    dict                      -> dict of collated values;   namedtuple -> the same namedtuple type
    tuple / list              -> list of collated columns (torch returns a list for tuples too)
"""
from __future__ import annotations

import collections.abc
import numbers
from typing import Any

import numpy as np

from ... import ops
from ...tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _check_shapes(shapes: list[tuple]) -> None:
    for i, s in enumerate(shapes):
        if s != shapes[0]:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(shapes[0])} at "
                               f"entry 0 and {list(s)} at entry {i}")


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch, recursively (torch.utils.data.default_collate)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        _check_shapes([tuple(b.shape) for b in batch])
        return ops.stack([b.detach() for b in batch])
    if isinstance(elem, np.ndarray) and elem.dtype.kind not in "USO":
        _check_shapes([b.shape for b in batch])
        return ops.tensor(np.stack(batch))
    if isinstance(elem, np.generic) and elem.dtype.kind not in "USO":
        return ops.tensor(np.array(batch))
    if isinstance(elem, bool):
        return ops.tensor(np.array(batch, dtype=bool))
    if isinstance(elem, numbers.Integral):
        return ops.tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return ops.tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:  # a Mapping type that cannot be built from a dict
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError(f"each element in list of batch should be of equal size, got lengths "
                               f"{sorted({len(b) for b in batch})}")
        return [default_collate(list(samples)) for samples in zip(*batch)]
    raise TypeError(_ERROR.format(type(elem)))


def default_convert(data: Any) -> Any:
    """Without batching (batch_size=None): numpy arrays become tensors, containers are converted
    element-wise, anything else is returned unchanged (torch.utils.data.default_convert)."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "USO":
        return ops.tensor(data)
    if isinstance(data, np.generic) and data.dtype.kind not in "USO":
        return ops.tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return [default_convert(d) for d in data]
    return data
