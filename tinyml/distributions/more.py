"""Exponential, Laplace (reparameterisable) and Independent (torch.distributions), for the RL- and
VAE-style code of a first day:

    Exponential(rate):      x = E / rate, E ~ Exp(1);  log p(x) = ln rate - rate x (x >= 0)
        H = 1 - ln rate;  mean 1 / rate, variance 1 / rate^2;  cdf 1 - e^(-rate x);  icdf -ln(1 - p) / rate
    Laplace(mu, b):         x = mu - b sign(u) ln(1 - |u|), u ~ U(-1, 1);  log p(x) = -ln(2 b) - |x - mu| / b
        H = 1 + ln(2 b);  mean mu, variance 2 b^2;  cdf 1/2 - sign(x - mu) expm1(-|x - mu| / b) / 2
        icdf mu - b sign(p - 1/2) ln(1 - 2 |p - 1/2|)
    Independent(base, n):   the base's last n batch dims become event dims: log_prob and entropy sum
        over them (e.g. a diagonal Gaussian policy, Independent(Normal(mu, sigma), 1))
"""
from __future__ import annotations

import math

from .. import dtypes as _dt
from .. import ops
from ..tensor import Tensor
from .continuous import LocationScale
from .distribution import Distribution, _Constraint, broadcast_all, constraints

__all__ = ["Exponential", "Independent", "Laplace"]

_nonnegative = _Constraint("GreaterThanEq(lower_bound=0.0)", lambda v: v >= 0)


class Exponential(Distribution):
    arg_constraints = {"rate": constraints.positive}
    support = _nonnegative
    has_rsample = True

    def __init__(self, rate, validate_args: bool | None = None) -> None:
        (self.rate,) = broadcast_all(rate)
        super().__init__(tuple(self.rate.shape), validate_args=validate_args)

    @property
    def mean(self) -> Tensor:
        return self.rate.reciprocal()

    @property
    def mode(self) -> Tensor:
        return ops.zeros_like(self.rate)

    @property
    def variance(self) -> Tensor:
        return self.rate.pow(-2)

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        shape = self._extended_shape(sample_shape)
        e = ops.empty(shape, dtype=self.rate.dtype, device=self.rate.device).exponential_(generator=generator)
        return e / self.rate

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.rate.log() - self.rate * value

    def entropy(self) -> Tensor:
        return 1.0 - self.rate.log()

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return 1 - (-self.rate * value).exp()

    def icdf(self, value: Tensor) -> Tensor:
        return -(-value).log1p() / self.rate


class Laplace(LocationScale):
    @property
    def variance(self) -> Tensor:
        return 2 * self.scale.pow(2)

    @property
    def stddev(self) -> Tensor:
        return math.sqrt(2) * self.scale

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        shape = self._extended_shape(sample_shape)
        eps = float(_dt.FloatInfo(self.loc.dtype).eps)
        u = ops.rand(shape, dtype=self.loc.dtype, device=self.loc.device, generator=generator) * (2 - eps) \
            - (1 - eps)  # U(eps - 1, 1): ln(1 - |u|) stays finite
        return self.loc - self.scale * u.sign() * (-u.abs()).log1p()

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return -(2 * self.scale).log() - (value - self.loc).abs() / self.scale

    def entropy(self) -> Tensor:
        return 1 + (2 * self.scale).log()

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return 0.5 - 0.5 * (value - self.loc).sign() * ops.expm1(-(value - self.loc).abs() / self.scale)

    def icdf(self, value: Tensor) -> Tensor:
        term = value - 0.5
        return self.loc - self.scale * term.sign() * (-2 * term.abs()).log1p()


class Independent(Distribution):
    """Reinterprets the last `reinterpreted_batch_ndims` batch dims of `base_distribution` as event dims."""

    arg_constraints: dict = {}

    def __init__(self, base_distribution: Distribution, reinterpreted_batch_ndims: int,
                 validate_args: bool | None = None) -> None:
        n = int(reinterpreted_batch_ndims)
        batch = tuple(base_distribution.batch_shape)
        if not 0 <= n <= len(batch):
            raise ValueError(f"Expected reinterpreted_batch_ndims <= len(base_distribution.batch_shape), "
                             f"actual {n} vs {len(batch)} (batch shape {batch})")
        self.base_dist, self.reinterpreted_batch_ndims = base_distribution, n
        cut = len(batch) - n
        super().__init__(batch[:cut], batch[cut:] + tuple(base_distribution.event_shape),
                         validate_args=False if validate_args is None else validate_args)

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    @property
    def support(self):
        return self.base_dist.support

    @property
    def mean(self) -> Tensor:
        return self.base_dist.mean

    @property
    def mode(self) -> Tensor:
        return self.base_dist.mode

    @property
    def variance(self) -> Tensor:
        return self.base_dist.variance

    def sample(self, sample_shape=()) -> Tensor:
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape=()) -> Tensor:
        return self.base_dist.rsample(sample_shape)

    def _sum_rightmost(self, t: Tensor) -> Tensor:
        n = self.reinterpreted_batch_ndims
        return t.sum(tuple(range(-n, 0))) if n else t

    def log_prob(self, value: Tensor) -> Tensor:
        return self._sum_rightmost(self.base_dist.log_prob(value))

    def entropy(self) -> Tensor:
        return self._sum_rightmost(self.base_dist.entropy())

    def __repr__(self) -> str:
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"
