"""tinyml.Generator (tinyml/random.py) and the random functions that take `generator=`: creation
(rand, randn, randint, randperm, normal) and sampling (multinomial, bernoulli, exponential_,
geometric_ in ops/sampling.py). Streams are reproducible, independent of the global seed, and
leave the global stream untouched; distribution checks use fixed seeds, so each is deterministic,
with bounds computed from the sample size (5 standard errors, or chi-square at p = 0.001)."""
import numpy as np
import pytest

import tinyml

# chi-square critical values at p = 0.001 by degrees of freedom
CHI2_999 = {3: 16.27, 4: 18.47}


def _gen(seed=7):
    return tinyml.Generator().manual_seed(seed)


def _draws(g):
    return [tinyml.rand(4, generator=g), tinyml.randn(2, 3, generator=g),
            tinyml.randint(0, 9, (5,), generator=g),
            tinyml.randperm(6, generator=g), tinyml.normal(1.0, 2.0, (3,), generator=g),
            tinyml.multinomial(tinyml.tensor([0.2, 0.3, 0.5]), 4, True, generator=g),
            tinyml.bernoulli(tinyml.full((5,), 0.5), generator=g),
            tinyml.zeros(3).exponential_(generator=g), tinyml.zeros(3).geometric_(0.3, generator=g)]


def test_a_seeded_generator_reproduces_every_random_function(device):
    a = [t.numpy() for t in _draws(_gen())]
    b = [t.numpy() for t in _draws(_gen())]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(_draws(_gen(8))[0].numpy(), a[0])
    on_device = tinyml.rand(4, generator=_gen(), device=device)  # drawn on the host: the same values
    np.testing.assert_array_equal(on_device.cpu().numpy(), a[0])


def test_generators_are_independent_of_the_global_stream():
    tinyml.manual_seed(0)
    ref = tinyml.rand(3).numpy()
    np.testing.assert_array_equal(ref, np.random.Generator(np.random.PCG64(0)).random(3).astype(np.float32))
    tinyml.manual_seed(0)
    g = _gen()
    from_g = tinyml.rand(3, generator=g).numpy()
    np.testing.assert_array_equal(tinyml.rand(3).numpy(), ref)  # the global stream did not move
    tinyml.manual_seed(123)  # and reseeding it does not touch g's stream
    np.testing.assert_array_equal(from_g, tinyml.rand(3, generator=_gen()).numpy())
    assert not np.array_equal(from_g, tinyml.rand(3, generator=_gen(8)).numpy())


def test_state_seed_and_initial_seed():
    g = tinyml.Generator()
    assert g.initial_seed() == 67280421310721 and g.device == tinyml.device("cpu")  # torch's default
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    state = g.get_state()
    assert state.dtype is tinyml.uint8 and state.shape == (45,)
    first = tinyml.randn(4, generator=g).numpy()
    g.manual_seed(99)
    g.set_state(state)
    assert g.initial_seed() == 5
    np.testing.assert_array_equal(tinyml.randn(4, generator=g).numpy(), first)
    s = g.seed()
    assert isinstance(s, int) and 0 <= s < 2 ** 64 and g.initial_seed() == s
    assert tinyml.Generator().manual_seed(-1).initial_seed() == 2 ** 64 - 1  # torch wraps negatives


def test_generator_errors_name_the_values():
    g = tinyml.Generator()
    with pytest.raises(RuntimeError, match=r"uint8 tensor of 45 bytes .*dtype float32 and shape \(3,\)"):
        g.set_state(tinyml.zeros(3))
    with pytest.raises(RuntimeError, match=r"outside \[-2\^63, 2\^64\)"):
        g.manual_seed(2 ** 64)
    with pytest.raises(TypeError, match="int seed, got float"):
        g.manual_seed(1.5)
    with pytest.raises(TypeError, match="must be a tinyml.Generator, got int"):
        tinyml.rand(3, generator=5)


def test_generator_works_where_a_numpy_generator_is_taken():
    w1, w2 = tinyml.zeros(3, 4), tinyml.zeros(3, 4)
    tinyml.nn.init.uniform_(w1, -1, 1, generator=_gen())
    tinyml.nn.init.uniform_(w2, -1, 1, generator=_gen())
    np.testing.assert_array_equal(w1.numpy(), w2.numpy())
    assert np.abs(w1.numpy()).max() <= 1 and w1.numpy().std() > 0


def _chi2(counts, probs):
    expected = np.asarray(probs) * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_multinomial_with_replacement_follows_the_weights():
    weights = tinyml.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 5.0, 0.0, 5.0]])  # unnormalised rows
    out = tinyml.multinomial(weights, 20000, replacement=True, generator=_gen(1))
    assert out.shape == (2, 20000) and out.dtype is tinyml.int64
    counts = np.bincount(out.numpy()[0], minlength=4)
    assert _chi2(counts, [0.1, 0.2, 0.3, 0.4]) < CHI2_999[3]
    second = np.bincount(out.numpy()[1], minlength=4)
    assert second[0] == second[2] == 0 and abs(second[1] - 10000) < 5 * np.sqrt(20000 * 0.25)
    assert weights.multinomial(3, True, generator=_gen(1)).shape == (2, 3)


def test_multinomial_without_replacement_draws_distinct_categories():
    p = tinyml.tensor([0.1, 0.2, 0.3, 0.4, 0.0])
    out = tinyml.multinomial(p.expand(4000, 5), 4, generator=_gen(2)).numpy()
    assert all(len(set(row)) == 4 for row in out) and not (out == 4).any()  # zero weight never drawn
    assert _chi2(np.bincount(out[:, 0], minlength=4), [0.1, 0.2, 0.3, 0.4]) < CHI2_999[3]  # first draw ~ p
    whole = tinyml.multinomial(tinyml.tensor([1.0, 1.0, 1.0]), 3, generator=_gen(3)).numpy()
    assert sorted(whole.tolist()) == [0, 1, 2]


def test_multinomial_checks_as_torch():
    with pytest.raises(RuntimeError, match=r"cannot sample n_sample \(4\) > prob_dist.size\(-1\) \(3\)"):
        tinyml.multinomial(tinyml.ones(3), 4)
    with pytest.raises(RuntimeError, match="`inf`, `nan` or element < 0"):
        tinyml.multinomial(tinyml.tensor([0.5, -0.1]), 1)
    with pytest.raises(RuntimeError, match="`inf`, `nan` or element < 0"):
        tinyml.multinomial(tinyml.tensor([0.5, float("nan")]), 1)
    with pytest.raises(RuntimeError, match="sum of probabilities <= 0"):
        tinyml.multinomial(tinyml.zeros(2, 3), 1, True)
    with pytest.raises(RuntimeError, match="not enough non-negative category"):
        tinyml.multinomial(tinyml.tensor([1.0, 0.0, 0.0]), 2)
    with pytest.raises(RuntimeError, match=r"1 or 2 dim, got shape \[1, 2, 3\]"):
        tinyml.multinomial(tinyml.ones(1, 2, 3), 1)
    with pytest.raises(RuntimeError, match="floating-point dtypes for input, got .*int64"):
        tinyml.multinomial(tinyml.tensor([1, 2]), 1)
    with pytest.raises(RuntimeError, match=r"n_sample <= 0 samples \(num_samples=0\)"):
        tinyml.multinomial(tinyml.ones(3), 0)


def test_bernoulli_tensor_and_scalar_probabilities():
    n = 20000
    p = tinyml.tensor([0.0, 0.25, 0.9, 1.0]).expand(n, 4).contiguous()
    draws = tinyml.bernoulli(p, generator=_gen(4))
    assert draws.dtype is tinyml.float32 and set(np.unique(draws.numpy())) <= {0.0, 1.0}
    means = draws.numpy().mean(0)
    assert means[0] == 0 and means[3] == 1
    for got, want in zip(means[1:3], (0.25, 0.9)):
        assert abs(got - want) < 5 * np.sqrt(want * (1 - want) / n)
    fixed = tinyml.zeros(n, dtype=tinyml.float64).bernoulli(0.3, generator=_gen(5))
    assert fixed.dtype is tinyml.float64 and abs(fixed.numpy().mean() - 0.3) < 5 * np.sqrt(0.21 / n)
    with pytest.raises(RuntimeError, match=r"probability in \[0, 1\].*\[0.5, 1.5\]"):
        tinyml.bernoulli(tinyml.tensor([0.5, 1.5]))
    with pytest.raises(RuntimeError, match=r"p to be in \[0, 1\], but got p=2.0"):
        tinyml.bernoulli(tinyml.zeros(2), 2.0)


def test_exponential_and_geometric_fill_in_place():
    n = 20000
    x = tinyml.zeros(n)
    assert x.exponential_(2.0, generator=_gen(6)) is x
    assert x.numpy().min() >= 0 and abs(x.numpy().mean() - 0.5) < 5 * 0.5 / np.sqrt(n)  # mean 1/l, sd 1/l
    k = tinyml.zeros(n, dtype=tinyml.int64).geometric_(0.25, generator=_gen(7))
    mean, sd = 1 / 0.25, np.sqrt(0.75) / 0.25
    assert k.numpy().min() >= 1 and abs(k.numpy().mean() - mean) < 5 * sd / np.sqrt(n)
    with pytest.raises(RuntimeError, match="lambda > 0.0, but found lambda=0"):
        x.exponential_(0)
    with pytest.raises(RuntimeError, match=r"p to be in \(0, 1\), but got p=1"):
        x.geometric_(1)
    leaf = tinyml.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.exponential_()
