"""logspace, normal with tensor mean / std (ops/creation.py), linalg.matrix_rank / matrix_power /
multi_dot / vecdot (tinyml/linalg.py), set_printoptions and the tensor repr (tinyml/_printing.py),
Normal / Uniform cdf and icdf, and torch.autograd.profiler as tinyml.profiler: against PyTorch."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml.testing import assert_close, gradcheck


@pytest.mark.parametrize("args,kwargs", [((0, 2, 3), {}), ((-1, 1, 4), dict(base=2)), ((2, 0, 5), {}),
                                         ((0, 3, 4), dict(dtype="int64")), ((1, 1, 1), {}), ((0, 1, 0), {}),
                                         ((0.5, 1.5, 3), dict(dtype="float64"))])
def test_logspace_matches_torch(args, kwargs):
    tk = {k: getattr(torch, v) if k == "dtype" else v for k, v in kwargs.items()}
    mk = {k: getattr(tinyml, v) if k == "dtype" else v for k, v in kwargs.items()}
    assert_close(tinyml.logspace(*args, **mk), torch.logspace(*args, **tk))


def test_normal_with_tensor_mean_and_std():
    tinyml.manual_seed(0)
    mean = tinyml.tensor([[0.0], [10.0]])
    std = tinyml.tensor([0.5, 1.0, 2.0])
    draws = np.stack([tinyml.normal(mean, std).numpy() for _ in range(2000)])
    assert draws.shape == (2000, 2, 3)
    np.testing.assert_allclose(draws.mean(0), [[0, 0, 0], [10, 10, 10]], atol=0.15)
    np.testing.assert_allclose(draws.std(0), [[0.5, 1, 2]] * 2, rtol=0.08)
    assert tinyml.normal(tinyml.zeros(3, dtype=tinyml.float64), 1.0).dtype is tinyml.float64
    assert tinyml.normal(1.0, tinyml.ones(4)).shape == (4,)
    assert tinyml.normal(0.0, 1.0, (2, 3)).shape == (2, 3)
    g = tinyml.Generator().manual_seed(3)
    a = tinyml.normal(tinyml.zeros(5), 1.0, generator=g)
    assert np.array_equal(a.numpy(), tinyml.normal(tinyml.zeros(5), 1.0, generator=g.manual_seed(3)).numpy())


def test_normal_errors_name_the_values():
    with pytest.raises(RuntimeError, match="std >= 0.0.*-1"):
        tinyml.normal(tinyml.zeros(2), tinyml.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="size argument is required"):
        tinyml.normal(0.0, 1.0)
    with pytest.raises(TypeError, match="size is only accepted"):
        tinyml.normal(tinyml.zeros(2), 1.0, (2,))


def test_matrix_rank_matches_torch():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5, 4))
    a[1, :, 3] = a[1, :, 0] * 2
    a[2] = np.outer(rng.standard_normal(5), rng.standard_normal(4))
    sym = a[:, :4, :4] + a[:, :4, :4].transpose(0, 2, 1)
    for arr, kw in ((a, {}), (a, dict(atol=1.0)), (a, dict(rtol=0.3)), (a, dict(atol=0.5, rtol=0.2)),
                    (sym, dict(hermitian=True)), (a.astype(np.float32), {})):
        assert_close(tinyml.linalg.matrix_rank(tinyml.tensor(arr), **kw),
                     torch.linalg.matrix_rank(torch.tensor(arr), **kw))
    with pytest.raises(RuntimeError, match=r"matrix_rank.*\(4,\)"):
        tinyml.linalg.matrix_rank(tinyml.ones(4))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -1, -3])
def test_matrix_power_matches_torch(n):
    a = np.random.default_rng(1).standard_normal((2, 3, 3)) + 2 * np.eye(3)
    x, t = tinyml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    y, yt = tinyml.linalg.matrix_power(x, n), torch.linalg.matrix_power(t, n)
    assert_close(y, yt.detach())
    if n:
        y.sum().backward()
        yt.sum().backward()
        assert_close(x.grad, t.grad)
        m0 = tinyml.tensor(a[0], requires_grad=True)
        assert gradcheck(lambda m: tinyml.linalg.matrix_power(m, n), [m0])


def test_multi_dot_and_vecdot_match_torch():
    rng = np.random.default_rng(2)
    mats = [rng.standard_normal(s) for s in ((4,), (4, 3), (3, 5), (5,))]
    assert_close(tinyml.linalg.multi_dot([tinyml.tensor(m) for m in mats]),
                 torch.linalg.multi_dot([torch.tensor(m) for m in mats]))
    x, y = rng.standard_normal((2, 3)), rng.standard_normal((3,))
    assert_close(tinyml.linalg.vecdot(tinyml.tensor(x), tinyml.tensor(y)),
                 torch.linalg.vecdot(torch.tensor(x), torch.tensor(y)))


@pytest.fixture
def default_printoptions():
    yield
    tinyml.set_printoptions(profile="default")
    torch.set_printoptions(profile="default")


@pytest.mark.parametrize("values", [[0.063, 2.0], [1e-5, 2.0], [1.0, 1e9], [np.nan, np.inf, -np.inf, 1.5],
                                    [[1.0, -2.0], [3.0, 4.0]], [0.0, -0.0], [3.25], [1e-20, 0.0],
                                    [[0.12345, -100.5], [7.0, 0.001]], list(range(2000)),
                                    np.linspace(-2, 2, 1500).reshape(3, 500) ** 3])
def test_repr_matches_torch(values, default_printoptions):
    arr = np.array(values, dtype=np.float32)
    assert repr(tinyml.tensor(arr)) == repr(torch.tensor(arr))


@pytest.mark.parametrize("options", [dict(precision=2), dict(sci_mode=True),
                                     dict(precision=6, sci_mode=False), dict(profile="short"),
                                     dict(threshold=5, edgeitems=2)])
def test_set_printoptions_matches_torch(options, default_printoptions):
    tinyml.set_printoptions(**options)
    torch.set_printoptions(**options)
    arr = np.array([[0.12345678, -1.5, 3.0, 2.25], [10.125, 0.5, -0.25, 1.0]], np.float32)
    assert repr(tinyml.tensor(arr)) == repr(torch.tensor(arr))
    with pytest.raises(ValueError, match="profile.*'long'"):
        tinyml.set_printoptions(profile="long")


def test_normal_and_uniform_cdf_icdf_match_torch():
    v = np.array([-1.5, 0.0, 0.3, 2.0], np.float64)
    p = np.array([0.01, 0.3, 0.5, 0.99], np.float64)
    n = [lib.distributions.Normal(lib.tensor([0.5, 0.0, 1.0, -1.0], dtype=lib.float64),
                                  lib.tensor([1.0, 2.0, 0.5, 3.0], dtype=lib.float64))
         for lib in (tinyml, torch)]
    assert_close(n[0].cdf(tinyml.tensor(v)), n[1].cdf(torch.tensor(v)))
    assert_close(n[0].icdf(tinyml.tensor(p)), n[1].icdf(torch.tensor(p)))
    u = [lib.distributions.Uniform(-2.0, 3.0) for lib in (tinyml, torch)]
    assert_close(u[0].cdf(tinyml.tensor(v)), u[1].cdf(torch.tensor(v)))
    assert_close(u[0].icdf(tinyml.tensor(p)), u[1].icdf(torch.tensor(p)))
    loc = tinyml.tensor(0.5, dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda m: tinyml.distributions.Normal(m, 2.0).cdf(tinyml.tensor(v)), [loc])
    assert gradcheck(lambda m: tinyml.distributions.Normal(m, 2.0).icdf(tinyml.tensor(p)), [loc])
    with pytest.raises(ValueError, match="support"):
        tinyml.distributions.Uniform(0.0, 1.0).cdf(tinyml.tensor([2.0]))


def test_autograd_profiler_is_tinyml_profiler():
    assert tinyml.autograd.profiler is tinyml.profiler
    x, a = tinyml.randn(3, 4), tinyml.randn(4, 5)
    with tinyml.autograd.profiler.profile() as prof:
        with tinyml.autograd.profiler.record_function("step"):
            x @ a
    names = [row.key for row in prof.key_averages()]
    assert "step" in names and any("matmul" in n.lower() for n in names)
    with tinyml.autograd.profiler.profile(enabled=False) as off:
        x @ a
    assert off.events == []
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        tinyml.autograd.nothing  # noqa: B018


@pytest.mark.parametrize("args", [(3, 3), (3, 4, 1), (4, 3, -1), (0, 3), (2, 5, 9), (5, 2, -9)])
def test_tril_triu_indices_match_torch(args):
    for name in ("tril_indices", "triu_indices"):
        assert_close(getattr(tinyml, name)(*args), getattr(torch, name)(*args))
    assert tinyml.triu_indices(3, 3, dtype=tinyml.int32).dtype is tinyml.int32
    with pytest.raises(RuntimeError, match=r"tril_indices: row \(-1\)"):
        tinyml.tril_indices(-1, 2)


def _pairs(lib):
    D, t = lib.distributions, lib.tensor
    return [(D.Normal(t([0.0, 1.0]), t([1.0, 2.0])), D.Normal(t(0.5), t(1.5))),
            (D.Bernoulli(t([0.0, 0.3, 1.0, 0.6])), D.Bernoulli(t([0.5, 0.0, 1.0, 0.2]))),
            (D.Bernoulli(logits=t([-1.0, 2.0])), D.Bernoulli(logits=t([0.5, 0.5]))),
            (D.Categorical(t([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])), D.Categorical(t([0.3, 0.1, 0.6]))),
            (D.Categorical(logits=t([1.0, 0.0, -1.0])), D.Categorical(t([0.0, 0.5, 0.5]))),
            (D.Uniform(0.0, 1.0), D.Uniform(-1.0, 2.0)),
            (D.Uniform(t([0.0, 0.0]), 1.0), D.Uniform(t([0.5, -1.0]), 2.0))]


def test_kl_divergence_matches_torch():
    for (p, q), (tp, tq) in zip(_pairs(tinyml), _pairs(torch)):
        assert_close(tinyml.distributions.kl_divergence(p, q), torch.distributions.kl_divergence(tp, tq),
                     msg=f"{type(p).__name__}:")
    mu = tinyml.tensor([0.3, -0.2], dtype=tinyml.float64, requires_grad=True)
    D = tinyml.distributions
    assert gradcheck(lambda m: D.kl_divergence(D.Normal(m, m.exp()), D.Normal(0.0, 1.0)), [mu])
    with pytest.raises(NotImplementedError, match="Normal.*Bernoulli"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Bernoulli(0.5))

    class MyNormal(D.Normal):  # a subclass of its own, so that the rule added here stays in this test
        pass

    @D.register_kl(MyNormal, D.Uniform)
    def _kl(p, q):
        return p.loc * 0 + 7.0

    assert D.kl_divergence(MyNormal(tinyml.tensor(0.0), 1.0), D.Uniform(0.0, 1.0)).item() == 7.0
    assert D.kl_divergence(MyNormal(tinyml.tensor(0.0), 1.0), D.Normal(0.0, 1.0)).item() == 0.0  # inherited
