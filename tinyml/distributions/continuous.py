"""Normal and Uniform (torch.distributions), both reparameterisable.

    Normal(mu, sigma):  x = mu + sigma eps, eps ~ N(0, 1)
        log p(x) = -(x - mu)^2 / (2 sigma^2) - log sigma - log sqrt(2 pi)
        H = 1/2 + 1/2 log(2 pi) + log sigma
        cdf(x) = (1 + erf((x - mu) / (sigma sqrt 2))) / 2;  icdf(p) = mu + sigma sqrt 2 erfinv(2 p - 1)
    Uniform(a, b):      x = a + (b - a) u, u ~ U[0, 1)
        log p(x) = log 1[a <= x < b] - log(b - a);  H = log(b - a);  mean (a + b)/2, variance (b - a)^2 / 12
        cdf(x) = clamp((x - a) / (b - a), 0, 1);  icdf(p) = a + (b - a) p
"""
from __future__ import annotations

import math

from .. import ops
from ..tensor import Tensor
from .distribution import Distribution, _numpy, broadcast_all, constraints

__all__ = ["Normal", "Uniform"]


class LocationScale(Distribution):
    """The part a real-valued location-scale family shares (Normal, Laplace): loc and scale broadcast
    together, reparameterisable, mean = mode = loc."""
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args: bool | None = None) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(tuple(self.loc.shape), validate_args=validate_args)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc


class Normal(LocationScale):
    @property
    def stddev(self) -> Tensor:
        return self.scale

    @property
    def variance(self) -> Tensor:
        return self.scale * self.scale

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        shape = self._extended_shape(sample_shape)
        eps = ops.randn(shape, dtype=self.loc.dtype, device=self.loc.device, generator=generator)
        return self.loc + eps * self.scale

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        var = self.scale * self.scale
        return -((value - self.loc) ** 2) / (2 * var) - self.scale.log() - math.log(math.sqrt(2 * math.pi))

    def entropy(self) -> Tensor:
        return 0.5 + 0.5 * math.log(2 * math.pi) + self.scale.log()

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return 0.5 * (1 + ops.erf((value - self.loc) / (self.scale * math.sqrt(2))))

    def icdf(self, value: Tensor) -> Tensor:
        return self.loc + self.scale * ops.erfinv(2 * value - 1) * math.sqrt(2)


class Uniform(Distribution):
    arg_constraints = {"low": constraints.real, "high": constraints.real}
    has_rsample = True

    def __init__(self, low, high, validate_args: bool | None = None) -> None:
        self.low, self.high = broadcast_all(low, high)
        super().__init__(tuple(self.low.shape), validate_args=validate_args)
        if self._validate_args and not (_numpy(self.low) < _numpy(self.high)).all():
            raise ValueError(f"Uniform is not defined when low >= high: low={self.low}, high={self.high}")

    @property
    def support(self):
        return constraints.interval(_numpy(self.low), _numpy(self.high))

    @property
    def mean(self) -> Tensor:
        return (self.high + self.low) / 2

    @property
    def variance(self) -> Tensor:
        return (self.high - self.low) ** 2 / 12

    def rsample(self, sample_shape=(), generator=None) -> Tensor:
        shape = self._extended_shape(sample_shape)
        u = ops.rand(shape, dtype=self.low.dtype, device=self.low.device, generator=generator)
        return self.low + u * (self.high - self.low)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        inside = ((self.low <= value) & (self.high > value)).to(self.low.dtype)
        return inside.log() - (self.high - self.low).log()

    def entropy(self) -> Tensor:
        return (self.high - self.low).log()

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return ops.clamp((value - self.low) / (self.high - self.low), 0, 1)

    def icdf(self, value: Tensor) -> Tensor:
        return value * (self.high - self.low) + self.low
