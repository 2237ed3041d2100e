"""Distribution base class and the constraints its arguments are validated against
(torch.distributions.Distribution / constraints).

    shapes:  sample(sample_shape).shape == sample_shape + batch_shape + event_shape
    sample   draws without gradients; rsample (where the distribution has one) draws as a
             differentiable function of the parameters (the reparameterisation trick).

validate_args (default True, as torch with assertions on; `Distribution.set_default_validate_args`
changes it) checks the parameters at construction and the value given to log_prob, raising
ValueError naming the argument, its shape and the invalid values.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import ops
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["Distribution", "broadcast_all", "constraints"]


class _Constraint:
    """A named predicate over tensor values: check(value) -> numpy bool array (per event)."""

    def __init__(self, name: str, fn) -> None:
        self.name, self._fn = name, fn

    def check(self, value: np.ndarray) -> np.ndarray:
        return self._fn(value)

    def __repr__(self) -> str:
        return self.name


class constraints:  # noqa: N801  (torch's module name)
    real = _Constraint("Real()", lambda v: v == v)  # NaN is not a real number
    positive = _Constraint("GreaterThan(lower_bound=0.0)", lambda v: v > 0)
    unit_interval = _Constraint("Interval(lower_bound=0.0, upper_bound=1.0)", lambda v: (v >= 0) & (v <= 1))
    boolean = _Constraint("Boolean()", lambda v: (v == 0) | (v == 1))
    simplex = _Constraint("Simplex()", lambda v: np.all(v >= 0, axis=-1)
                          & (np.abs(v.sum(-1) - 1) < 1e-6))

    @staticmethod
    def integer_interval(low: int, high: int) -> _Constraint:
        return _Constraint(f"IntegerInterval(lower_bound={low}, upper_bound={high})",
                           lambda v: (v % 1 == 0) & (v >= low) & (v <= high))

    @staticmethod
    def interval(low: np.ndarray, high: np.ndarray) -> _Constraint:
        return _Constraint(f"Interval(lower_bound={low}, upper_bound={high})",
                           lambda v: (v >= low) & (v < high))


def _numpy(t: Tensor) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy())


def broadcast_all(*values) -> tuple[Tensor, ...]:
    """Numbers become tensors of the tensors' dtype (float32 when there are none); all broadcast."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    if len(tensors) + sum(isinstance(v, numbers.Number) for v in values) != len(values):
        raise ValueError(f"Input arguments must all be instances of numbers.Number or Tensor, got "
                         f"{[type(v).__name__ for v in values]}")
    like = tensors[0] if tensors else None
    out = [v if isinstance(v, Tensor) else
           ops.tensor(float(v), dtype=like.dtype if like is not None else None,
                      device=like.device if like is not None else None) for v in values]
    return tuple(ops.broadcast_tensors(*out))


class Distribution:
    has_rsample = False
    arg_constraints: dict = {}
    support: _Constraint | None = None
    _validate_default = True

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        if value not in (True, False):
            raise ValueError(f"validate_args must be True or False, got {value!r}")
        Distribution._validate_default = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args: bool | None = None) -> None:
        self._batch_shape, self._event_shape = tuple(batch_shape), tuple(event_shape)
        self._validate_args = Distribution._validate_default if validate_args is None else validate_args
        if self._validate_args:
            for name, constraint in self.arg_constraints.items():
                if name not in self.__dict__:
                    continue  # the parametrisation that was not given (probs vs logits)
                value = getattr(self, name)
                ok = constraint.check(_numpy(value))
                if not np.all(ok):
                    raise ValueError(f"Expected parameter {name} (Tensor of shape {tuple(value.shape)}) of "
                                     f"distribution {self!r} to satisfy the constraint {constraint!r}, but "
                                     f"found invalid values:\n{value}")

    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    def _extended_shape(self, sample_shape=()) -> tuple:
        return tuple(sample_shape) + self._batch_shape + self._event_shape

    def sample(self, sample_shape=()) -> Tensor:
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler (rsample); "
                                  "use sample")

    def _validate_sample(self, value) -> None:
        if not isinstance(value, Tensor):
            raise ValueError(f"The value argument to log_prob must be a Tensor, got {type(value).__name__}")
        support = self.support
        ok = support.check(_numpy(value)) if support is not None else True
        if not np.all(ok):
            raise ValueError(f"Expected value argument (Tensor of shape {tuple(value.shape)}) to be within "
                             f"the support ({support!r}) of the distribution {self!r}, but found invalid "
                             f"values:\n{value}")

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def __repr__(self) -> str:
        names = [k for k in self.arg_constraints if k in self.__dict__]
        shown = [(k, self.__dict__[k]) for k in names]
        args = ", ".join(f"{k}: {tuple(v.shape) if v.numel() > 1 else v}" for k, v in shown)
        return f"{type(self).__name__}({args})"
