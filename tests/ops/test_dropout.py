"""dropout (ops/dropout.py): scaling, seeding, edge cases."""
import numpy as np
import pytest

import tinyml
import tinyml.nn.functional as F


def test_dropout_scales_kept_values_and_reproduces_with_seed():
    x = tinyml.ones(200, 50, requires_grad=True)
    tinyml.manual_seed(3)
    y = F.dropout(x, 0.3)
    vals = np.unique(y.detach().numpy())
    np.testing.assert_allclose(vals, [0.0, 1 / 0.7], rtol=1e-6)
    kept = (y.detach().numpy() != 0).mean()
    assert abs(kept - 0.7) < 0.02
    tinyml.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.3).detach().numpy(), y.detach().numpy())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())  # grad = mask / (1 - p)


def test_dropout_edge_cases():
    x = tinyml.randn(4, 5)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.dropout(x, 1.5)
    z = tinyml.ones(10, 10)
    out = F.dropout(z, 0.5, inplace=True)
    assert out is z and set(np.unique(z.numpy())) <= {0.0, 2.0}
