"""tinyml.autocast: matmuls, linear and attention in bf16, master weights and their grads in fp32."""
import numpy as np
import pytest

import tinyml
import tinyml.nn.functional as F


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_autocast_runs_matmul_linear_attention_in_bf16_with_fp32_grads(device):
    if device == "cuda" and not tinyml.cuda.is_available():
        pytest.skip("no cuda device or interpreter")
    w = tinyml.randn(8, 16, device=device, requires_grad=True)
    x = tinyml.randn(2, 4, 16, device=device)
    with tinyml.autocast(device, dtype=tinyml.bfloat16):
        h = F.linear(x, w)
        assert h.dtype is tinyml.bfloat16
        q = h.reshape(2, 1, 4, 8)
        a = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        assert a.dtype is tinyml.bfloat16
        m = a.reshape(2, 4, 8) @ tinyml.ones(8, 3, device=device)
        assert m.dtype is tinyml.bfloat16
        loss = m.float().pow(2).mean()  # reductions stay in fp32
    assert not tinyml.is_autocast_enabled(device)
    loss.backward()
    assert w.grad.dtype is tinyml.float32 and np.isfinite(w.grad.cpu().numpy()).all()
    exact = F.linear(x, w)
    with tinyml.autocast(device):
        approx = F.linear(x, w).float()
    np.testing.assert_allclose(approx.detach().cpu().numpy(), exact.detach().cpu().numpy(), rtol=0.05, atol=0.05)


def test_autocast_rejects_other_dtypes_and_nests():
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        tinyml.autocast("cpu", dtype=tinyml.float64)
    with tinyml.autocast("cpu"):
        with tinyml.autocast("cpu", enabled=False):
            assert (tinyml.ones(2, 2) @ tinyml.ones(2, 2)).dtype is tinyml.float32
        assert (tinyml.ones(2, 2) @ tinyml.ones(2, 2)).dtype is tinyml.bfloat16
