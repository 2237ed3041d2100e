"""Packed variable-length sequences (torch.nn.utils.rnn): PackedSequence, pack_padded_sequence,
pad_packed_sequence, pack_sequence, pad_sequence.

A PackedSequence holds the steps of B sequences sorted by decreasing length, time-major:
data (sum(lengths), *) with batch_sizes[t] = number of sequences longer than t, so that step t's rows
are data[offset_t : offset_t + batch_sizes[t]]. sorted_indices maps the packed order to the caller's
batch order (None when the input was already sorted), unsorted_indices is its inverse. Packing and
padding are index_select gathers, so gradients flow through them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ... import ops
from ...tensor import Tensor

__all__ = [
    "PackedSequence",
    "pack_padded_sequence",
    "pad_packed_sequence",
    "pack_sequence",
    "pad_sequence",
    "packed_to_padded",
    "padded_to_packed",
]


class PackedSequence(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def to(self, *args, **kwargs) -> PackedSequence:
        return self._replace(data=self.data.to(*args, **kwargs))

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def _sizes(batch_sizes) -> list[int]:
    return [
        int(s) for s in np.asarray(batch_sizes.numpy() if isinstance(batch_sizes, Tensor) else batch_sizes)
    ]


def _gather_rows(batch_sizes: list[int], B: int) -> np.ndarray:
    """Row index into a time-major (T*B) flattening for every packed row: t*B + b for b < batch_sizes[t]."""
    return (
        np.concatenate([t * B + np.arange(n) for t, n in enumerate(batch_sizes)]).astype(np.int64)
        if batch_sizes
        else np.zeros(0, np.int64)
    )


def padded_to_packed(padded: Tensor, batch_sizes) -> Tensor:
    """Time-major padded (T, B, *) -> packed data (sum(batch_sizes), *), rows of sorted sequences."""
    sizes = _sizes(batch_sizes)
    T, B = padded.shape[0], padded.shape[1]
    flat = padded.reshape(T * B, *padded.shape[2:])
    return flat.index_select(0, ops.tensor(_gather_rows(sizes, B), device=padded.device))


def packed_to_padded(
    data: Tensor, batch_sizes, padding_value: float = 0.0, total_length: int | None = None
) -> Tensor:
    """Packed data (N, *) -> time-major padded (T, B, *) (B = batch_sizes[0]), padding_value elsewhere."""
    sizes = _sizes(batch_sizes)
    T = max(len(sizes), total_length or 0)
    B = sizes[0] if sizes else 0
    index = np.full(T * B, data.shape[0], np.int64)  # the appended padding row
    index[_gather_rows(sizes, B)] = np.arange(data.shape[0])
    pad_row = ops.full((1, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    rows = ops.cat([data, pad_row], 0).index_select(0, ops.tensor(index, device=data.device))
    return rows.reshape(T, B, *data.shape[1:])


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    if permutation is None:
        return None
    p = permutation.numpy()
    inv = np.empty_like(p)
    inv[p] = np.arange(len(p))
    return ops.tensor(inv, device=permutation.device)


def pack_padded_sequence(
    input: Tensor, lengths, batch_first: bool = False, enforce_sorted: bool = True
) -> PackedSequence:
    """Pack a padded batch ((T, B, *), or (B, T, *) with batch_first) of sequences with `lengths`."""
    lengths = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths, dtype=np.int64).reshape(
        -1
    )
    B = input.shape[0 if batch_first else 1]
    if len(lengths) != B:
        raise RuntimeError(
            f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} (batch_size={B})"
        )
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise RuntimeError(
                f"`lengths` array must be sorted in decreasing order when `enforce_sorted` is True "
                f"(got {lengths.tolist()}). You can pass `enforce_sorted=False` to "
                f"pack_padded_sequence and/or pack_sequence to sidestep this requirement if you do "
                f"not need ONNX exportability."
            )
        sorted_indices = None
    else:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
        sorted_indices = ops.tensor(order.astype(np.int64), device=input.device)
        input = input.index_select(0 if batch_first else 1, sorted_indices)
    if B and lengths.min() <= 0:
        raise RuntimeError(
            f"Length of all samples has to be greater than 0, but found an element in 'lengths' "
            f"that is <= 0 (lengths {lengths.tolist()})"
        )
    T = input.shape[1 if batch_first else 0]
    if B and lengths[0] > T:
        raise RuntimeError(f"lengths {lengths.tolist()} exceed the padded input's {T} steps")
    if batch_first:
        input = input.transpose(0, 1)
    batch_sizes = [int((lengths > t).sum()) for t in range(int(lengths[0]) if B else 0)]
    data = padded_to_packed(input[: len(batch_sizes)], batch_sizes)
    return PackedSequence(
        data, ops.tensor(np.array(batch_sizes, np.int64)), sorted_indices, invert_permutation(sorted_indices)
    )


def pad_packed_sequence(
    sequence: PackedSequence,
    batch_first: bool = False,
    padding_value: float = 0.0,
    total_length: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(padded (T, B, *) or (B, T, *), lengths int64 (B,)) in the caller's original batch order."""
    sizes = _sizes(sequence.batch_sizes)
    if total_length is not None and total_length < len(sizes):
        raise ValueError(
            f"Expected total_length to be at least the length of the longest sequence in input, but "
            f"got total_length={total_length} and max sequence length being {len(sizes)}"
        )
    padded = packed_to_padded(sequence.data, sizes, padding_value, total_length)
    B = sizes[0] if sizes else 0
    lengths = np.array([sum(1 for n in sizes if n > b) for b in range(B)], np.int64)
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(1, sequence.unsorted_indices)
        lengths = lengths[sequence.unsorted_indices.numpy()]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, ops.tensor(lengths)


def pad_sequence(
    sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"
) -> Tensor:
    """Stack tensors of shapes (L_i, *) into (max L, B, *) (or (B, max L, *)), padding each at its end
    (padding_side='right') or start ('left')."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences:
        if tuple(s.shape[1:]) != trailing:
            raise RuntimeError(
                f"pad_sequence: every sequence needs trailing dims {trailing}, got {tuple(s.shape)}"
            )
    L = max(s.shape[0] for s in sequences)
    rows = []
    for s in sequences:
        if s.shape[0] < L:
            pad = ops.full((L - s.shape[0], *trailing), padding_value, dtype=s.dtype, device=s.device)
            s = ops.cat([s, pad] if padding_side == "right" else [pad, s], 0)
        rows.append(s)
    return ops.stack(rows, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors (L_i, *) (sorted by decreasing length unless enforce_sorted=False)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)
