"""tinyml.distributions against torch.distributions: log_prob, entropy, moments, gradients of
log_prob and of rsample, sample shapes and statistics, validate_args errors."""
import numpy as np
import pytest
import torch
import torch.distributions as td

import tinyml
import tinyml.distributions as D


def _pair(arr, grad=True):
    return (tinyml.tensor(arr.copy(), requires_grad=grad),
            torch.tensor(arr.copy(), requires_grad=grad))


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=tol, atol=tol)


RNG = np.random.default_rng(0)


def _params(name):
    """(tinyml args, torch args, value for log_prob) for each distribution, float64."""
    if name == "Normal":
        loc, scale = RNG.standard_normal((2, 3)), RNG.uniform(0.5, 2, (2, 3))
        return [loc, scale], {}, RNG.standard_normal((4, 2, 3))
    if name == "Uniform":
        low = RNG.uniform(-2, 0, (3,))
        return [low, low + RNG.uniform(0.5, 2, (3,))], {}, low + 0.25
    if name == "Bernoulli-probs":
        value = (RNG.uniform(size=(2, 5)) > 0.5).astype(np.float64)
        return [], {"probs": RNG.uniform(0.05, 0.95, (5,))}, value
    if name == "Bernoulli-logits":
        return [], {"logits": RNG.standard_normal((5,))}, (RNG.uniform(size=(5,)) > 0.5).astype(np.float64)
    if name == "Categorical-probs":
        return [], {"probs": RNG.uniform(0.1, 1, (2, 4))}, np.array([[0, 3], [2, 1], [1, 1]])
    return [], {"logits": RNG.standard_normal((2, 4))}, np.array([[0, 3], [2, 1]])


NAMES = ["Normal", "Uniform", "Bernoulli-probs", "Bernoulli-logits", "Categorical-probs",
         "Categorical-logits"]


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_entropy_moments_and_gradients_match_torch(name):
    args, kwargs, value = _params(name)
    cls = name.split("-")[0]
    ours_args, theirs_args = zip(*[_pair(a) for a in args]) if args else ((), ())
    ours_kw, theirs_kw = {}, {}
    for k, v in kwargs.items():
        ours_kw[k], theirs_kw[k] = _pair(v)
    ours = getattr(D, cls)(*ours_args, **ours_kw)
    theirs = getattr(td, cls)(*theirs_args, **theirs_kw)
    assert ours.batch_shape == tuple(theirs.batch_shape) and ours.event_shape == tuple(theirs.event_shape)
    v_ours, v_theirs = tinyml.tensor(value), torch.tensor(value)
    lp_ours, lp_theirs = ours.log_prob(v_ours), theirs.log_prob(v_theirs)
    _close(lp_ours, lp_theirs)
    _close(ours.entropy(), theirs.entropy())
    if cls != "Categorical":
        _close(ours.mean, theirs.mean)
        _close(ours.variance, theirs.variance)
    else:
        assert np.isnan(ours.mean.numpy()).all() and ours.mean.shape == tuple(theirs.mean.shape)
    (lp_ours.sum() + ours.entropy().sum()).backward()
    (lp_theirs.sum() + theirs.entropy().sum()).backward()
    for a, b in list(zip(ours_args, theirs_args)) + [(ours_kw[k], theirs_kw[k]) for k in kwargs]:
        _close(a.grad, b.grad)


@pytest.mark.parametrize("cls", ["Normal", "Uniform"])
def test_rsample_is_reparameterised(cls):
    """Same noise -> same sample and gradients as torch: x = loc + eps scale, low + u (high - low)."""
    a, b = RNG.standard_normal(3), RNG.uniform(1, 2, 3)
    if cls == "Uniform":
        b = a + b
    (pa, ta), (pb, tb) = _pair(a), _pair(b)
    ours = getattr(D, cls)(pa, pb)
    tinyml.manual_seed(0)
    x = ours.rsample((4,))
    noise = (x.detach().numpy() - a) / (b if cls == "Normal" else b - a)  # recover eps / u
    theirs_x = ta + torch.tensor(noise) * (tb if cls == "Normal" else tb - ta)
    _close(x, theirs_x)
    (x ** 2).sum().backward()
    (theirs_x ** 2).sum().backward()
    _close(pa.grad, ta.grad)
    _close(pb.grad, tb.grad)
    assert ours.sample((2,)).requires_grad is False


def test_sample_shapes_and_statistics():
    tinyml.manual_seed(0)
    n = D.Normal(tinyml.tensor([1.0, -2.0]), tinyml.tensor([0.5, 2.0]))
    s = n.sample((4000,)).numpy()
    assert s.shape == (4000, 2)
    np.testing.assert_allclose(s.mean(0), [1.0, -2.0], atol=0.12)
    np.testing.assert_allclose(s.std(0), [0.5, 2.0], rtol=0.06)
    u = D.Uniform(tinyml.tensor([0.0]), tinyml.tensor([3.0])).sample((3000, 2)).numpy()
    assert u.shape == (3000, 2, 1) and u.min() >= 0 and u.max() < 3 and abs(u.mean() - 1.5) < 0.1
    b = D.Bernoulli(probs=tinyml.tensor([0.0, 0.3, 1.0])).sample((2000,)).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_allclose(b.mean(0), [0.0, 0.3, 1.0], atol=0.04)
    c = D.Categorical(probs=tinyml.tensor([[0.1, 0.0, 0.9], [1.0, 0.0, 0.0]]))
    cs = c.sample((3000,)).numpy()
    assert cs.shape == (3000, 2) and (cs[:, 1] == 0).all() and not (cs == 1).any()
    assert abs((cs[:, 0] == 2).mean() - 0.9) < 0.03
    g1, g2 = tinyml.Generator().manual_seed(4), tinyml.Generator().manual_seed(4)
    assert (n.rsample((3,), generator=g1).numpy() == n.rsample((3,), generator=g2).numpy()).all()


def test_validate_args_errors():
    with pytest.raises(ValueError, match=r"Expected parameter scale \(Tensor of shape \(2,\)\) of "
                                         r"distribution Normal.*GreaterThan\(lower_bound=0.0\)"):
        D.Normal(tinyml.zeros(2), tinyml.tensor([1.0, -1.0]))
    D.Normal(tinyml.zeros(2), tinyml.tensor([1.0, -1.0]), validate_args=False)  # allowed when off
    with pytest.raises(ValueError, match="probs.*Interval"):
        D.Bernoulli(probs=tinyml.tensor([1.5]))
    with pytest.raises(ValueError, match="either `probs` or `logits`"):
        D.Categorical(probs=tinyml.ones(2), logits=tinyml.ones(2))
    with pytest.raises(ValueError, match="low >= high"):
        D.Uniform(1.0, 0.0)
    with pytest.raises(ValueError, match=r"within the support \(Boolean\(\)\)"):
        D.Bernoulli(probs=tinyml.tensor([0.5])).log_prob(tinyml.tensor([0.5]))
    with pytest.raises(ValueError, match=r"IntegerInterval\(lower_bound=0, upper_bound=2\)"):
        D.Categorical(logits=tinyml.zeros(3)).log_prob(tinyml.tensor([3]))
    with pytest.raises(ValueError, match="must be a Tensor"):
        D.Normal(0.0, 1.0).log_prob(0.5)
    with pytest.raises(NotImplementedError, match="Bernoulli has no reparameterised sampler"):
        D.Bernoulli(probs=tinyml.tensor([0.5])).rsample()


def test_log_prob_edges_like_torch():
    p = np.array([0.0, 1.0, 0.5])
    ours, theirs = D.Bernoulli(probs=tinyml.tensor(p)), td.Bernoulli(probs=torch.tensor(p))
    v = np.array([1.0, 0.0, 1.0])
    _close(ours.log_prob(tinyml.tensor(v)), theirs.log_prob(torch.tensor(v)), tol=1e-6)
    out = D.Uniform(0.0, 1.0, validate_args=False).log_prob(tinyml.tensor([-1.0, 0.5]))
    assert out.numpy()[0] == -np.inf and out.numpy()[1] == 0.0
