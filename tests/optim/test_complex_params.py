"""Complex parameters: SGD steps as torch's do; the adaptive optimizers refuse them by name."""
import numpy as np
import pytest
import torch

import tinyml


def test_sgd_on_a_complex_parameter_matches_torch():
    rng = np.random.default_rng(0)
    z0 = (rng.standard_normal(5) + 1j * rng.standard_normal(5)).astype(np.complex64)
    target = (rng.standard_normal(5) + 1j * rng.standard_normal(5)).astype(np.complex64)
    z, zt = tinyml.tensor(z0, requires_grad=True), torch.tensor(z0, requires_grad=True)
    opt = tinyml.optim.SGD([z], lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    opt_t = torch.optim.SGD([zt], lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    for _ in range(5):
        for param, o, lib in ((z, opt, tinyml), (zt, opt_t, torch)):
            o.zero_grad()
            ((param - lib.tensor(target)).abs() ** 2).sum().backward()
            o.step()
    np.testing.assert_allclose(z.detach().numpy(), zt.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop", "Adagrad", "Lion"])
def test_adaptive_optimizers_refuse_complex_parameters(name):
    z = tinyml.zeros(3, dtype=tinyml.complex64, requires_grad=True)
    with pytest.raises(TypeError, match=rf"{name}: complex parameters are not supported .*\(3,\)"):
        getattr(tinyml.optim, name)([z])
