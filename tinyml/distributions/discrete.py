"""Bernoulli and Categorical (torch.distributions), parametrised by probs or by logits.

    Bernoulli(p):   log p(x) = x l - softplus(l),  l = logit(p);  H = BCEWithLogits(l, p)
                    mean p, variance p(1 - p)
    Categorical(p): p normalised over the last dim, log-probs l = log p (or logits - logsumexp(logits));
                    log p(k) = l_k;  H = -sum_k p_k l_k;  mean and variance are NaN (no order on categories)

Given probs, logits are computed from probs clamped to [eps, 1 - eps] (eps = the dtype's machine
epsilon), as torch does, so log-probabilities stay finite at p = 0 or 1.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd import no_grad
from ..nn import functional as F
from ..tensor import Tensor
from .distribution import Distribution, broadcast_all, constraints

__all__ = ["Bernoulli", "Categorical"]


def _probs_or_logits(name: str, probs, logits) -> None:
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: either `probs` or `logits` must be specified, but not both (got "
                         f"probs={probs}, logits={logits})")


def _eps(t: Tensor) -> float:
    return float(np.finfo(t.dtype.np).eps)


class Bernoulli(Distribution):
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean

    def __init__(self, probs=None, logits=None, validate_args: bool | None = None) -> None:
        _probs_or_logits("Bernoulli", probs, logits)
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
            param = self.probs
        else:
            (self.logits,) = broadcast_all(logits)
            param = self.logits
        super().__init__(tuple(param.shape), validate_args=validate_args)
        if probs is not None:
            eps = _eps(self.probs)
            p = self.probs.clamp(eps, 1 - eps)
            self._logits = p.log() - (-p).log1p()
        else:
            self._probs = self.logits.sigmoid()

    def __getattr__(self, name):
        # the parametrisation not given is derived (torch's lazy_property)
        if name in ("probs", "logits"):
            return self.__dict__["_" + name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def mode(self) -> Tensor:
        return (self.probs >= 0.5).to(self.probs.dtype)

    @property
    def variance(self) -> Tensor:
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with no_grad():
            return ops.bernoulli(self.probs.detach().expand(shape), generator=generator)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value.to(logits.dtype), reduction="none")

    def entropy(self) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")


class Categorical(Distribution):
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real}

    def __init__(self, probs=None, logits=None, validate_args: bool | None = None) -> None:
        _probs_or_logits("Categorical", probs, logits)
        param = probs if probs is not None else logits
        if not isinstance(param, Tensor) or param.dim() < 1:
            raise ValueError(f"Categorical: `{'probs' if probs is not None else 'logits'}` must be a Tensor "
                             f"with at least one dimension, got {param!r}")
        if probs is not None:
            self.probs = probs / probs.sum(-1, keepdim=True)
        else:
            self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self._num_events = param.shape[-1]
        super().__init__(tuple(param.shape[:-1]), validate_args=validate_args)
        if probs is not None:
            eps = _eps(self.probs)
            self._logits = self.probs.clamp(eps, 1 - eps).log()
        else:
            self._probs = self.logits.softmax(-1)

    __getattr__ = Bernoulli.__getattr__

    @property
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def param_shape(self) -> tuple:
        return tuple(self.probs.shape)

    @property
    def mean(self) -> Tensor:
        return ops.full(self._extended_shape(), float("nan"), dtype=self.probs.dtype,
                        device=self.probs.device)

    @property
    def variance(self) -> Tensor:
        return self.mean

    @property
    def mode(self) -> Tensor:
        return self.probs.argmax(-1)

    def sample(self, sample_shape=(), generator=None) -> Tensor:
        shape = self._extended_shape(sample_shape)
        n = int(np.prod(tuple(sample_shape), dtype=np.int64))
        with no_grad():
            probs_2d = self.probs.detach().reshape(-1, self._num_events)
            samples_2d = ops.multinomial(probs_2d, n, True, generator=generator).transpose(0, 1)
            return samples_2d.reshape(shape)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        value, log_pmf = ops.broadcast_tensors(value, self.logits)
        return log_pmf.gather(-1, value[..., :1]).squeeze(-1)

    def entropy(self) -> Tensor:
        min_real = float(np.finfo(self.logits.dtype.np).min)
        p_log_p = self.logits.clamp(min=min_real) * self.probs
        return -p_log_p.sum(-1)
