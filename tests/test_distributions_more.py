"""Exponential, Laplace and Independent (tinyml/distributions/more.py) against torch.distributions:
log_prob, entropy, cdf, icdf, moments, shapes, sampling statistics and reparameterised gradients."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml.testing import assert_close, gradcheck

V = np.array([0.1, 0.5, 2.0, 3.0])
P = np.array([0.1, 0.4, 0.6, 0.95])


def _pair(lib):
    D, t = lib.distributions, (lambda a: lib.tensor(a, dtype=lib.float64))
    return [D.Exponential(t([0.5, 1.0, 2.0, 3.0])),
            D.Laplace(t([0.0, 1.0, -1.0, 2.0]), t([1.0, 0.5, 2.0, 1.0]))]


@pytest.mark.parametrize("k", [0, 1])
def test_exponential_and_laplace_match_torch(k):
    d, dt = _pair(tinyml)[k], _pair(torch)[k]
    for name in ("log_prob", "cdf"):
        assert_close(getattr(d, name)(tinyml.tensor(V)), getattr(dt, name)(torch.tensor(V)), msg=name)
    assert_close(d.icdf(tinyml.tensor(P)), dt.icdf(torch.tensor(P)), msg="icdf")
    for name in ("entropy",):
        assert_close(getattr(d, name)(), getattr(dt, name)(), msg=name)
    for name in ("mean", "mode", "variance", "stddev"):
        assert_close(getattr(d, name), getattr(dt, name), msg=name)


@pytest.mark.parametrize("k", [0, 1])
def test_samples_follow_the_distribution_and_rsample_is_differentiable(k):
    tinyml.manual_seed(0)
    d = _pair(tinyml)[k]
    x = d.sample((20000,))
    assert x.shape == (20000, 4) and not x.requires_grad
    np.testing.assert_allclose(x.numpy().mean(0), d.mean.numpy(), rtol=0.05, atol=0.05)
    np.testing.assert_allclose(x.numpy().var(0), d.variance.numpy(), rtol=0.1)
    # the samples are their own icdf of a uniform: the empirical cdf at the median is 1/2
    np.testing.assert_allclose((x.numpy() <= d.icdf(tinyml.full((4,), 0.5, dtype=tinyml.float64)).numpy())
                               .mean(0), 0.5, atol=0.02)
    p = tinyml.tensor([0.7, 1.3], dtype=tinyml.float64, requires_grad=True)
    D = tinyml.distributions
    make = (lambda q: D.Exponential(q)) if k == 0 else (lambda q: D.Laplace(q, q))
    tinyml.manual_seed(1)
    assert gradcheck(lambda q: (tinyml.manual_seed(1), make(q).rsample((3,)))[1], [p])


def test_validation_errors_name_the_values():
    with pytest.raises(ValueError, match="rate.*GreaterThan"):
        tinyml.distributions.Exponential(tinyml.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="support"):
        tinyml.distributions.Exponential(1.0).log_prob(tinyml.tensor([-0.5]))
    with pytest.raises(ValueError, match=r"reinterpreted_batch_ndims.*3 vs 2.*\(2, 3\)"):
        tinyml.distributions.Independent(tinyml.distributions.Normal(tinyml.zeros(2, 3), 1.0), 3)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_independent_matches_torch(n):
    rng = np.random.default_rng(0)
    mu, sd, v = rng.standard_normal((2, 3)), rng.uniform(0.5, 2, (2, 3)), rng.standard_normal((4, 2, 3))
    d = tinyml.distributions.Independent(tinyml.distributions.Normal(tinyml.tensor(mu), tinyml.tensor(sd)), n)
    dt = torch.distributions.Independent(torch.distributions.Normal(torch.tensor(mu), torch.tensor(sd)), n)
    assert tuple(d.batch_shape) == tuple(dt.batch_shape) and tuple(d.event_shape) == tuple(dt.event_shape)
    assert_close(d.log_prob(tinyml.tensor(v)), dt.log_prob(torch.tensor(v)))
    assert_close(d.entropy(), dt.entropy())
    assert_close(d.mean, dt.mean)
    assert d.rsample((5,)).shape == (5, 2, 3) and d.has_rsample
