"""selective_scan on the cuda device (Triton kernels) against the numpy reference (PyTorch has no
selective scan), forward and backward. Without a GPU it runs in Triton's interpreter."""
import numpy as np
import pytest

import tinyml
from tinyml.ops.scan import selective_scan
from tinyml.testing import assert_close

pytestmark = pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")


def _run(device, arrays, weights, softplus):
    ts = {k: None if v is None else tinyml.tensor(v, device=device, requires_grad=True) for k, v in arrays.items()}
    out, last = selective_scan(ts["u"], ts["delta"], ts["A"], ts["B"], ts["C"], ts["D"], ts["z"], ts["delta_bias"],
                               delta_softplus=softplus, return_last_state=True)
    loss = (out * tinyml.tensor(weights[0], device=device)).sum() + (last * tinyml.tensor(weights[1], device=device)).sum()
    loss.backward()
    return [out, last] + [None if ts[k] is None else ts[k].grad for k in arrays]


@pytest.mark.parametrize("varying, softplus, optional, dtype", [(False, True, True, "float32"),
                                                                (True, False, False, "float64")])
def test_selective_scan_matches_reference(varying, softplus, optional, dtype):
    rng = np.random.default_rng(0)
    bt, d, length, n, groups = 2, 4, 6, 3, 2

    def f(*shape):
        return rng.standard_normal(shape).astype(dtype)

    arrays = {"u": f(bt, d, length), "delta": f(bt, d, length) * 0.5, "A": -np.exp(f(d, n)),
              "B": f(bt, groups, n, length) if varying else f(d, n),
              "C": f(bt, groups, n, length) if varying else f(d, n),
              "D": f(d) if optional else None, "z": f(bt, d, length) if optional else None,
              "delta_bias": f(d) if optional else None}
    weights = f(bt, d, length), f(bt, d, n)
    with tinyml.backends.force_reference():
        ref = _run("cpu", arrays, weights, softplus)
    got = _run("cuda", arrays, weights, softplus)
    for name, r, g in zip(["out", "last"] + list(arrays), ref, got):
        if r is None:
            assert g is None, name
            continue
        assert_close(g.detach().cpu(), r.detach().numpy(), kind="reduction", msg=f"{name}:")
