"""Random sampling from tensors: multinomial, bernoulli, and the in-place fills exponential_ and
geometric_. Like every random function (tinyml/random.py), they draw on the host from the global
generator or the `generator=` given, and copy the result to the input's device. None is
differentiable.

    multinomial(p, n, replacement=True)   per row, n draws of i with probability p[i] / sum(p):
                                          inverse CDF, the first i with cumsum(p)[i] > u sum(p)
    multinomial(p, n, replacement=False)  the n largest p[i] / E[i], E[i] ~ Exp(1) (the
                                          exponential race PyTorch uses): successive draws
                                          without replacement, each proportional to p
    bernoulli(p)                          1 with probability p (elementwise), else 0
    exponential_(lambd)                   x = -log(1 - U) / lambd
    geometric_(p)                         x = k >= 1 with probability (1 - p)^(k - 1) p
"""
from __future__ import annotations

import numpy as np

from .. import random as _random
from ..tensor import Tensor
from .creation import tensor
from .inplace import apply_inplace

__all__ = ["bernoulli", "exponential_", "geometric_", "multinomial"]

_MAX_CATEGORIES = 1 << 24  # PyTorch's limit


def _host(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """int64 indices of num_samples categories drawn per row of the 1-D or 2-D weights `input`
    (non-negative, not necessarily summing to 1), with or without replacement."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got shape {list(input.shape)}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got {input.dtype}")
    n = int(num_samples)
    k = input.shape[-1]
    if n <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples (num_samples={n})")
    if not replacement and n > k:
        raise RuntimeError(f"cannot sample n_sample ({n}) > prob_dist.size(-1) ({k}) samples without "
                           "replacement")
    if k > _MAX_CATEGORIES:
        raise RuntimeError(f"number of categories cannot exceed 2^24, got {k}")
    p = _host(input).astype(np.float64).reshape(-1, k)
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    total = p.sum(1)
    if (total <= 0).any():
        raise RuntimeError(f"invalid multinomial distribution (sum of probabilities <= 0) in row "
                           f"{int(np.argmax(total <= 0))}")
    g = _random.numpy_generator(generator)
    if replacement:
        cdf = np.cumsum(p, 1)
        u = g.random((p.shape[0], n)) * total[:, None]
        out = np.stack([np.searchsorted(c, row_u, side="right") for c, row_u in zip(cdf, u)])
        last = k - 1 - np.argmax(p[:, ::-1] > 0, axis=1)  # rounding can reach the end: the last nonzero
        out = np.minimum(out, last[:, None])
    else:
        if ((p > 0).sum(1) < n).any():
            raise RuntimeError("invalid multinomial distribution (with replacement=False, not enough "
                               f"non-negative category to sample): rows need at least {n} nonzero weights")
        keys = p / g.exponential(size=p.shape)
        out = np.argsort(-keys, axis=1, kind="stable")[:, :n]
    return tensor(out.reshape(tuple(input.shape[:-1]) + (n,)).astype(np.int64), device=input.device)


def bernoulli(input: Tensor, p: float | None = None, *, generator=None) -> Tensor:
    """1 where a uniform draw falls below the probability (input's elements, or `p` for every
    element), else 0; input's shape and dtype."""
    if not isinstance(input, Tensor):
        raise TypeError(f"bernoulli(): argument 'input' must be a Tensor, not {type(input).__name__}")
    if p is None:
        if not input.dtype.is_floating_point:
            raise RuntimeError("bernoulli(): expected a floating point probability tensor, got "
                               f"{input.dtype}")
        probs = _host(input)
        if not np.all((probs >= 0) & (probs <= 1)):
            raise RuntimeError("bernoulli(): expected every probability in [0, 1] (p_in >= 0 && p_in <= 1), "
                               f"got values in [{np.nanmin(probs)}, {np.nanmax(probs)}]"
                               + (" and NaN" if np.isnan(probs).any() else ""))
    else:
        p = float(p)
        if not 0 <= p <= 1:
            raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={p}")
        probs = p
    u = _random.numpy_generator(generator).random(tuple(input.shape))
    return tensor((u < probs).astype(input.dtype.np), device=input.device)


def exponential_(self: Tensor, lambd: float = 1.0, *, generator=None) -> Tensor:
    """Fill self with samples of the exponential distribution of rate lambd (mean 1 / lambd)."""
    if not lambd > 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    if not self.dtype.is_floating_point:
        raise RuntimeError(f"exponential_ expects a floating point tensor, got {self.dtype}")
    draws = _random.numpy_generator(generator).exponential(1.0 / lambd, tuple(self.shape))
    return apply_inplace(self, tensor(draws.astype(self.dtype.np), device=self.device))


def geometric_(self: Tensor, p: float, *, generator=None) -> Tensor:
    """Fill self with the number of Bernoulli(p) trials up to the first success (1, 2, ...)."""
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={p}")
    draws = _random.numpy_generator(generator).geometric(p, tuple(self.shape))
    return apply_inplace(self, tensor(draws.astype(self.dtype.np), device=self.device))
