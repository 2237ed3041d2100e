"""Adam/AdamW count their "step" state in place (torch's `step_t += 1`), with the same values and
updates as torch, also after a state_dict round trip."""
import numpy as np
import pytest
import torch

import tinyml


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_step_counts_in_place_like_torch(name):
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    p, q = tinyml.tensor(a.copy(), requires_grad=True), torch.tensor(a.copy(), requires_grad=True)
    opt = getattr(tinyml.optim, name)([p], lr=0.1, weight_decay=0.01)
    ref = getattr(torch.optim, name)([q], lr=0.1, weight_decay=0.01)
    step_tensor = None
    for i in range(3):
        g = np.random.default_rng(i + 1).standard_normal((3, 4)).astype(np.float32)
        p.grad, q.grad = tinyml.tensor(g), torch.tensor(g)
        opt.step()
        ref.step()
        step = opt.state[p]["step"]
        step_tensor = step if step_tensor is None else step_tensor
        assert step is step_tensor and step.dtype == tinyml.float32 and step.shape == ()
        assert step.item() == ref.state[q]["step"].item() == i + 1
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-6, atol=1e-7)
    fresh = getattr(tinyml.optim, name)([p], lr=0.1, weight_decay=0.01)
    fresh.load_state_dict(opt.state_dict())
    p.grad = tinyml.tensor(np.ones((3, 4), np.float32))
    fresh.step()
    assert fresh.state[p]["step"].item() == 4
