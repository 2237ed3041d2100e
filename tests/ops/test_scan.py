"""selective_scan vs mamba_ssm's selective_scan_ref (written out in torch here, autograd through
its loop), vs the same recurrence as tinyml ops in a Python loop over time, and gradcheck."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tinyml
from tinyml.testing import assert_close, gradcheck


def torch_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False):
    """mamba_ssm.ops.selective_scan_interface.selective_scan_ref (real A), without einops."""
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = TF.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    if B.dim() == 2:
        deltaB_u = torch.einsum("bdl,dn,bdl->bdln", delta, B, u)
    else:
        if B.dim() == 4:
            B = B.repeat_interleave(dim // B.shape[1], dim=1)
            deltaB_u = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
        else:
            deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    if C.dim() == 4:
        C = C.repeat_interleave(dim // C.shape[1], dim=1)
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        if C.dim() == 2:
            y = torch.einsum("bdn,dn->bd", x, C)
        elif C.dim() == 3:
            y = torch.einsum("bdn,bn->bd", x, C[:, :, i])
        else:
            y = torch.einsum("bdn,bdn->bd", x, C[:, :, :, i])
        ys.append(y)
    out = torch.stack(ys, dim=2)
    if D is not None:
        out = out + u * D[:, None]
    if z is not None:
        out = out * TF.silu(z)
    return (out, x) if return_last_state else out


def make(bt=2, d=4, n=3, length=7, bc="var", groups=1, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    bc_shape = {"fixed": (d, n), "var": (bt, n, length), "group": (bt, groups, n, length)}[bc]
    return {"u": rng.standard_normal((bt, d, length)), "delta": rng.random((bt, d, length)) * 0.5,
                "A": -rng.random((d, n)) - 0.1, "B": rng.standard_normal(bc_shape), "C": rng.standard_normal(bc_shape),
                "D": rng.standard_normal(d), "z": rng.standard_normal((bt, d, length)), "delta_bias": rng.random(d) * 0.2}


CASES = [
    {"bc": "var", "opts": ("D", "z", "delta_bias"), "softplus": True},
    {"bc": "var", "opts": (), "softplus": False},
    {"bc": "fixed", "opts": ("D",), "softplus": True},
    {"bc": "group", "opts": ("z",), "softplus": False, "groups": 2},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['bc']}-{'-'.join(c['opts']) or 'plain'}")
@pytest.mark.parametrize("last", [False, True])
def test_selective_scan_vs_mamba_ref(kernels, case, last):
    arrs = make(bc=case["bc"], groups=case.get("groups", 1), length=9, d=6 if case["bc"] == "group" else 5)
    names = ["u", "delta", "A", "B", "C"] + list(case["opts"])
    tm = {k: tinyml.tensor(arrs[k].astype(np.float32), requires_grad=True) for k in names}
    th = {k: torch.tensor(arrs[k].astype(np.float32), requires_grad=True) for k in names}
    kw = {"delta_softplus": case["softplus"], "return_last_state": last}
    out_tm, out_th = tinyml.selective_scan(**tm, **kw), torch_scan_ref(**th, **kw)
    outs_tm = out_tm if last else (out_tm,)
    outs_th = out_th if last else (out_th,)
    rng = np.random.default_rng(5)
    loss_tm = loss_th = 0
    for a, b in zip(outs_tm, outs_th):
        assert tuple(a.shape) == tuple(b.shape) and a.dtype == tinyml.float32
        assert_close(a, b, kind="reduction")
        w = rng.standard_normal(tuple(b.shape)).astype(np.float32)
        loss_tm = loss_tm + (a * tinyml.tensor(w)).sum()
        loss_th = loss_th + (b * torch.tensor(w)).sum()
    loss_tm.backward()
    loss_th.backward()
    for k in names:
        assert_close(tm[k].grad, th[k].grad, rtol=1e-4, atol=1e-4, msg=f"grad of {k}:")


def test_selective_scan_vs_tinyml_loop(kernels):
    """The same recurrence written with tinyml's elementwise ops, autograd through the time loop
    (time steps picked with one-hot masks so that only mul/sum/exp are needed)."""
    arrs = make(bt=2, d=3, n=2, length=5, bc="var")
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    fused = {k: tinyml.tensor(arrs[k], requires_grad=True) for k in names}
    loop = {k: tinyml.tensor(arrs[k], requires_grad=True) for k in names}
    out = tinyml.selective_scan(**fused, delta_softplus=True)
    u, delta, A, B, C, D, z, bias = (loop[k] for k in names)
    length = u.shape[2]
    dt = (delta + bias.reshape(1, 3, 1)).exp().add(1).log()  # softplus
    x = None
    ref = 0
    for t in range(length):
        onehot = tinyml.tensor(np.eye(length)[t])
        pick = lambda a, onehot=onehot: (a * onehot).sum(-1)
        dt_t, u_t = pick(dt), pick(u)  # (b, d)
        dA = (dt_t.reshape(2, 3, 1) * A.reshape(1, 3, 2)).exp()
        dBu = (dt_t * u_t).reshape(2, 3, 1) * pick(B).reshape(2, 1, 2)
        x = dBu if x is None else dA * x + dBu
        y_t = (x * pick(C).reshape(2, 1, 2)).sum(-1) + D.reshape(1, 3) * u_t
        ref = ref + y_t.reshape(2, 3, 1) * onehot
    ref = ref * z * tinyml.sigmoid(z)
    assert_close(out, ref, kind="reduction")
    w = tinyml.tensor(np.random.default_rng(2).standard_normal(out.shape))
    (out * w).sum().backward()
    (ref * w).sum().backward()
    for k in names:
        assert_close(fused[k].grad, loop[k].grad, kind="reduction", msg=f"grad of {k}:")


def test_selective_scan_gradcheck(kernels):
    arrs = make(bt=1, d=2, n=2, length=4, bc="var", seed=3)
    ts = [tinyml.tensor(arrs[k], requires_grad=True) for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]

    def fn(u, delta, A, B, C, D, z, bias):
        return tinyml.selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, return_last_state=True)

    assert gradcheck(fn, ts)


def test_selective_scan_float64_and_long_sequence(kernels):
    arrs = make(bt=1, d=3, n=4, length=70, bc="var", seed=4)
    names = ["u", "delta", "A", "B", "C", "D"]
    out = tinyml.selective_scan(*(tinyml.tensor(arrs[k]) for k in names), delta_softplus=True)
    assert out.dtype == tinyml.float64
    assert_close(out, torch_scan_ref(*(torch.tensor(arrs[k]) for k in names), delta_softplus=True),
                 kind="reduction")


def test_selective_scan_errors():
    a = make(bc="var")
    t = {k: tinyml.tensor(v.astype(np.float32)) for k, v in a.items()}
    with pytest.raises(ValueError, match=r"delta has shape \(2, 4, 6\), expected \(2, 4, 7\)"):
        tinyml.selective_scan(t["u"], tinyml.randn(2, 4, 6),
                              t["A"], t["B"], t["C"])
    with pytest.raises(ValueError, match=r"A must have shape \(4, N\)"):
        tinyml.selective_scan(t["u"], t["delta"], tinyml.randn(5, 3), t["B"], t["C"])
    with pytest.raises(ValueError, match=r"B has shape \(2, 3, 8\)"):
        tinyml.selective_scan(t["u"], t["delta"], t["A"], tinyml.randn(2, 3, 8), t["C"])
    with pytest.raises(ValueError, match="3 groups .* must divide D = 4"):
        tinyml.selective_scan(t["u"], t["delta"], t["A"], tinyml.randn(2, 3, 3, 7), t["C"])
    with pytest.raises(TypeError, match="D has dtype tinyml.float64 but u has dtype tinyml.float32"):
        tinyml.selective_scan(t["u"], t["delta"], t["A"], t["B"], t["C"], D=tinyml.tensor(a["D"]))
