"""What the Trainer accepts as batches, and the default way it turns one into a loss.

A source is a sampler with next_batch() (and state_dict/load_state_dict for exact resume, as
tinyml.data.RandomWindowSampler has) or any re-iterable of batches (restarted when exhausted, and
from its start on resume). A batch is an array, a tuple/list or a dict of them; numpy arrays
become tensors on the device (`to_device`). `model_loss`, the Trainer's default loss_fn, passes a
tuple batch as model(*batch) and a dict as model(**batch), and takes the loss the model returns:
a loss tensor, a (logits, loss) pair, or an object with .loss.
"""
from __future__ import annotations

import numpy as np

import tinyml


class BatchSource:
    """Uniform access to a sampler (next_batch/state_dict) or a plain re-iterable."""

    def __init__(self, source):
        self.source = source
        self._it = None

    def next(self):
        if hasattr(self.source, "next_batch"):
            return self.source.next_batch()
        if self._it is None:
            self._it = iter(self.source)
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.source)
            return next(self._it)

    def state_dict(self):
        return self.source.state_dict() if hasattr(self.source, "state_dict") else None

    def load_state_dict(self, state) -> None:
        if state is not None and hasattr(self.source, "load_state_dict"):
            self.source.load_state_dict(state)


def to_device(x, device):
    if isinstance(x, np.ndarray):
        return tinyml.tensor(x, device=device)
    if isinstance(x, tinyml.Tensor):
        return x if x.device == device else x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    return x


def batch_tokens(batch) -> int:
    """Elements of the batch's first array (tokens for a language model): the throughput unit."""
    if isinstance(batch, (tuple, list)):
        first = batch[0]
    elif isinstance(batch, dict):
        first = next(iter(batch.values()))
    else:
        first = batch
    return int(np.prod(first.shape)) if hasattr(first, "shape") else 1


def model_loss(model, batch):
    """The default loss_fn: the loss the model computes itself from the batch."""
    return loss_of(model(**batch) if isinstance(batch, dict) else model(*batch))


def loss_of(out):
    if isinstance(out, tinyml.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return out[1]
    return out.loss
