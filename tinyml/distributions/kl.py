"""kl_divergence(p, q) = E_p[log p(x) - log q(x)] in closed form, and register_kl, as torch.distributions:

    Normal || Normal            (r + (mu_p - mu_q)^2 / sigma_q^2 - 1 - ln r) / 2,  r = sigma_p^2 / sigma_q^2
    Bernoulli || Bernoulli      p ln(p / q) + (1 - p) ln((1 - p) / (1 - q)), from the logits (softplus form);
                                inf where q puts no mass on an outcome p can take, 0 terms where p is 0
    Categorical || Categorical  sum_k p_k (ln p_k - ln q_k), inf where q_k = 0 < p_k
    Uniform || Uniform          ln((b_q - a_q) / (b_p - a_p)), inf unless [a_p, b_p] lies inside [a_q, b_q]
A pair without a rule raises NotImplementedError naming both types.
"""
from __future__ import annotations

import math
from typing import Callable

from .. import ops
from ..ops.activation import softplus
from ..tensor import Tensor
from .continuous import Normal, Uniform
from .discrete import Bernoulli, Categorical
from .distribution import Distribution

__all__ = ["kl_divergence", "register_kl"]

_KL_RULES: dict[tuple[type, type], Callable] = {}


def register_kl(type_p: type, type_q: type):
    """Decorator registering `fn(p, q)` as the KL divergence of a (type_p, type_q) pair."""
    def decorator(fn: Callable) -> Callable:
        _KL_RULES[(type_p, type_q)] = fn
        return fn

    return decorator


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p || q), batched over the distributions' batch shape; the rule of the most specific registered
    pair of (super)classes."""
    for tp in type(p).__mro__:
        for tq in type(q).__mro__:
            fn = _KL_RULES.get((tp, tq))
            if fn is not None:
                return fn(p, q)
    raise NotImplementedError(f"No KL(p || q) is implemented for p of type {type(p).__name__} and q of type "
                              f"{type(q).__name__}")


def _inf_where(t: Tensor, cond: Tensor) -> Tensor:
    return ops.where(cond, math.inf, t)


@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    t1 = p.probs * (softplus(-q.logits) - softplus(-p.logits))
    t1 = ops.where(p.probs == 0, 0.0, _inf_where(t1, q.probs == 0))
    t2 = (1 - p.probs) * (softplus(q.logits) - softplus(p.logits))
    t2 = ops.where(p.probs == 1, 0.0, _inf_where(t2, q.probs == 1))
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    t = p.probs * (p.logits - q.logits)
    shape = ops.broadcast_shapes(t.shape, q.probs.shape, p.probs.shape)
    t = _inf_where(t.expand(shape), (q.probs == 0).expand(shape))
    t = ops.where((p.probs == 0).expand(shape), 0.0, t)
    return t.sum(-1)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p: Uniform, q: Uniform) -> Tensor:
    result = ((q.high - q.low) / (p.high - p.low)).log()
    return _inf_where(result, (q.low > p.low) | (q.high < p.high))
