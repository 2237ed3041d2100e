"""uniform_ / normal_ / bernoulli_ take `generator=` (torch's keyword) and draw from it."""
import numpy as np
import pytest

import tinyml


@pytest.mark.parametrize("method,args", [("uniform_", (-2.0, 3.0)), ("normal_", (1.0, 0.5)),
                                         ("bernoulli_", (0.3,))])
def test_inplace_random_fill_draws_from_the_generator(method, args):
    def fill(seed):
        t = tinyml.zeros(64, dtype=tinyml.float64)
        return getattr(t, method)(*args, generator=tinyml.Generator().manual_seed(seed)).numpy()

    a, b, c = fill(3), fill(3), fill(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    tinyml.manual_seed(0)
    before = tinyml.rand(2).numpy()
    tinyml.manual_seed(0)
    fill(5)  # a private generator leaves the global stream alone
    np.testing.assert_array_equal(tinyml.rand(2).numpy(), before)
    if method == "uniform_":
        assert a.min() >= -2.0 and a.max() < 3.0
    if method == "bernoulli_":
        assert set(np.unique(a)) <= {0.0, 1.0}
