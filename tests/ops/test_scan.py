"""selective_scan vs mamba_ssm's selective_scan_ref (written out in torch here, autograd through
its loop), vs the same recurrence as tinyml ops in a Python loop over time, and gradcheck, on every
backend of the family (backend_device: the numpy reference, the C++ kernels, the Triton kernels);
then the C++ and Triton kernels against the numpy reference kernel by kernel (device: cpu, cuda)
on sizes off the SIMD widths, the channel blocks and the Triton time chunks, and the bindings'
argument checks."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from family_devices import backend_device_fixture

import tinyml
from tinyml.backends import implementations, run
from tinyml.backends.cpu import _C
from tinyml.testing import assert_close, gradcheck, tolerance

backend_device = backend_device_fixture()
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
TRITON_INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"  # Triton kernels run in Python: keep them few


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
            "A": -rng.random((d, n)) - 0.1, "B": rng.standard_normal(bc_shape),
            "C": rng.standard_normal(bc_shape), "D": rng.standard_normal(d),
            "z": rng.standard_normal((bt, d, length)), "delta_bias": rng.random(d) * 0.2}


CASES = [
    {"bc": "var", "opts": ("D", "z", "delta_bias"), "softplus": True},
    {"bc": "var", "opts": (), "softplus": False},
    {"bc": "fixed", "opts": ("D",), "softplus": True},
    {"bc": "group", "opts": ("z",), "softplus": False, "groups": 2},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['bc']}-{'-'.join(c['opts']) or 'plain'}")
@pytest.mark.parametrize("last", [False, True])
def test_selective_scan_vs_mamba_ref(backend_device, case, last):
    if backend_device == "cuda" and TRITON_INTERPRETER and (not last or case["bc"] != "var"):
        pytest.skip("Triton's interpreter runs two of these (the kernel tests below cover the rest)")
    arrs = make(bc=case["bc"], groups=case.get("groups", 1), length=9, d=6 if case["bc"] == "group" else 5)
    names = ["u", "delta", "A", "B", "C"] + list(case["opts"])
    tm = {k: tinyml.tensor(arrs[k].astype(np.float32), device=backend_device, requires_grad=True)
          for k in names}
    th = {k: torch.tensor(arrs[k].astype(np.float32), requires_grad=True) for k in names}
    kw = {"delta_softplus": case["softplus"], "return_last_state": last}
    out_tm, out_th = tinyml.selective_scan(**tm, **kw), torch_scan_ref(**th, **kw)
    outs_tm = out_tm if last else (out_tm,)
    outs_th = out_th if last else (out_th,)
    rng = np.random.default_rng(5)
    loss_tm = loss_th = 0
    for a, b in zip(outs_tm, outs_th):
        assert tuple(a.shape) == tuple(b.shape) and a.dtype == tinyml.float32
        assert_close(a.cpu(), b, kind="reduction")
        w = rng.standard_normal(tuple(b.shape)).astype(np.float32)
        loss_tm = loss_tm + (a * tinyml.tensor(w, device=backend_device)).sum()
        loss_th = loss_th + (b * torch.tensor(w)).sum()
    loss_tm.backward()
    loss_th.backward()
    for k in names:
        assert_close(tm[k].grad.cpu(), th[k].grad, rtol=1e-4, atol=1e-4, msg=f"grad of {k}:")


def test_selective_scan_vs_tinyml_loop(backend_device):
    """The same recurrence written with tinyml's elementwise ops, autograd through the time loop
    (time steps picked with one-hot masks so that only mul/sum/exp are needed)."""
    if backend_device == "cuda" and TRITON_INTERPRETER:
        pytest.skip("a hundred interpreted elementwise kernels: on a real GPU only")
    arrs = make(bt=2, d=3, n=2, length=5, bc="var")
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    dev = backend_device
    fused = {k: tinyml.tensor(arrs[k], device=dev, requires_grad=True) for k in names}
    loop = {k: tinyml.tensor(arrs[k], device=dev, requires_grad=True) for k in names}
    out = tinyml.selective_scan(**fused, delta_softplus=True)
    u, delta, A, B, C, D, z, bias = (loop[k] for k in names)
    length = u.shape[2]
    dt = (delta + bias.reshape(1, 3, 1)).exp().add(1).log()  # softplus
    x = None
    ref = 0
    for t in range(length):
        onehot = tinyml.tensor(np.eye(length)[t], device=dev)

        def pick(a, onehot=onehot):
            return (a * onehot).sum(-1)

        dt_t, u_t = pick(dt), pick(u)  # (b, d)
        dA = (dt_t.reshape(2, 3, 1) * A.reshape(1, 3, 2)).exp()
        dBu = (dt_t * u_t).reshape(2, 3, 1) * pick(B).reshape(2, 1, 2)
        x = dBu if x is None else dA * x + dBu
        y_t = (x * pick(C).reshape(2, 1, 2)).sum(-1) + D.reshape(1, 3) * u_t
        ref = ref + y_t.reshape(2, 3, 1) * onehot
    ref = ref * z * tinyml.sigmoid(z)
    assert_close(out.cpu(), ref.cpu(), kind="reduction")
    w = tinyml.tensor(np.random.default_rng(2).standard_normal(out.shape), device=dev)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    for k in names:
        assert_close(fused[k].grad.cpu(), loop[k].grad.cpu(), kind="reduction", msg=f"grad of {k}:")


def test_selective_scan_gradcheck(kernels):  # gradcheck perturbs host memory: reference and C++ only
    arrs = make(bt=1, d=2, n=2, length=4, bc="var", seed=3)
    ts = [tinyml.tensor(arrs[k], requires_grad=True) for k in NAMES]

    def fn(u, delta, A, B, C, D, z, bias):
        return tinyml.selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True,
                                     return_last_state=True)

    assert gradcheck(fn, ts)


def test_selective_scan_float64_and_long_sequence(backend_device):
    arrs = make(bt=1, d=3, n=4, length=70, bc="var", seed=4)
    names = ["u", "delta", "A", "B", "C", "D"]
    out = tinyml.selective_scan(*(tinyml.tensor(arrs[k], device=backend_device) for k in names),
                                delta_softplus=True)
    assert out.dtype == tinyml.float64
    assert_close(out.cpu(), torch_scan_ref(*(torch.tensor(arrs[k]) for k in names), delta_softplus=True),
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


# -- the C++ and Triton kernels against the numpy reference, kernel by kernel --------------------
RNG = np.random.default_rng(0)


def scan_inputs(bt, d, n, length, bc, groups, dtype, opts, groups_c=None):
    """Kernel inputs: B and C (D, N) ("fixed") or (bt, G, N, L) ("group"; C may have its own G)."""
    shape_b = {"fixed": (d, n), "group": (bt, groups, n, length)}[bc]
    shape_c = {"fixed": (d, n), "group": (bt, groups_c or groups, n, length)}[bc]
    a = {"u": RNG.standard_normal((bt, d, length)), "delta": RNG.random((bt, d, length)) * 2 - 1,
         "A": -RNG.random((d, n)) * 2, "B": RNG.standard_normal(shape_b), "C": RNG.standard_normal(shape_c),
         "D": RNG.standard_normal(d), "z": RNG.standard_normal((bt, d, length)),
         "delta_bias": RNG.random(d) * 0.2}
    return [None if k in ("D", "z", "delta_bias") and k not in opts else a[k].astype(dtype) for k in NAMES]


def on_device(name, device, *args):
    """Kernel `name` on `device` (the C++ kernel on cpu, the Triton kernel on cuda) as numpy results;
    numpy arguments go as tensors on the device, the rest (None, flags) as they are."""
    out = run(name, *(tinyml.tensor(a, device=device) if isinstance(a, np.ndarray) else a for a in args))
    return tuple(None if o is None else o.cpu().numpy() for o in out)


def close(a, b, dtype):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if y is None:
            assert x is None
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, y.shape, x.dtype, y.dtype)
        # long sums (dA, dB over batch x channels x time) cancel: their error scales with the largest entry
        rtol, atol = tolerance(np.dtype(dtype).name, "reduction")
        scale = float(np.abs(y).max()) if y.size else 0.0
        assert_close(x, y, rtol=rtol, atol=max(atol, 0.1 * rtol * scale))


KERNEL_CASES = [  # bt, d, n, length, B/C form, groups of B, groups of C, optional inputs, softplus
    (2, 5, 3, 9, "group", 1, 1, ("D", "z", "delta_bias"), True),
    (1, 6, 16, 33, "group", 3, 3, ("z",), False),
    (3, 4, 7, 1, "fixed", 1, 1, ("D", "delta_bias"), True),
    (2, 17, 5, 40, "group", 1, 1, (), True),
    (2, 3, 8, 12, "fixed", 1, 1, ("D", "z"), True),  # N = 8 and 16: whole vectors of states
    (2, 4, 3, 6, "group", 2, 2, (), False),  # the former Triton test's two cases
    (2, 4, 3, 6, "fixed", 1, 1, ("D", "z", "delta_bias"), True),
    (2, 40, 4, 70, "group", 4, 2, ("D", "z"), True),  # groups of 10 and 20 channels: partial blocks; 3 chunks
    (1, 19, 16, 65, "fixed", 1, 1, ("delta_bias",), True),  # a block of 16 + one of 3; L = 2 chunks + 1
    (1, 2, 5, 70, "group", 2, 1, ("D", "z", "delta_bias"), True),  # small enough for Triton's interpreter
]
# Triton's interpreter runs every program in Python: on it, the cases it can afford (the rest run on
# a real GPU and on the cpu)
INTERPRETED = {(2, 4, 3, 6, "fixed", "float32"), (2, 4, 3, 6, "group", "float64"),
               (1, 2, 5, 70, "group", "float32")}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bt,d,n,length,bc,groups,groups_c,opts,softplus", KERNEL_CASES)
def test_scan_kernels_match_reference(device, dtype, bt, d, n, length, bc, groups, groups_c, opts, softplus):
    if device == "cpu" and _C is None:
        pytest.skip("tinyml._C is not built")
    if device == "cuda" and TRITON_INTERPRETER and (bt, d, n, length, bc, dtype) not in INTERPRETED:
        pytest.skip("too slow for Triton's interpreter (runs on a GPU)")
    args = scan_inputs(bt, d, n, length, bc, groups, dtype, opts, groups_c)
    ref = implementations("selective_scan_forward")["reference"]
    out, last, _ = ref(*args, softplus)
    close(on_device("selective_scan_forward", device, *args, softplus), (out, last, None), dtype)
    # with keep_states: the same results, and what the backend keeps for its backward (cpu float32:
    # the states entering every 32 steps; None elsewhere)
    *got, states = on_device("selective_scan_forward", device, *args, softplus, True)
    close(got, (out, last), dtype)
    assert (states is not None) == (device == "cpu" and dtype == "float32")
    dout = RNG.standard_normal(out.shape).astype(dtype)
    dlast = RNG.standard_normal(last.shape).astype(dtype)
    ref = implementations("selective_scan_backward")["reference"]
    for dl in (None, dlast):
        want = ref(*args, softplus, dout, dl)
        close(on_device("selective_scan_backward", device, *args, softplus, dout, dl), want, dtype)
        if states is not None:  # the backward from the kept states, and recomputing them: both
            got = on_device("selective_scan_backward", device, *args, softplus, dout, dl, states)
            close(got, want, dtype)


@pytest.mark.skipif(_C is None, reason="tinyml._C is not built")
@pytest.mark.parametrize("bc", ["fixed", "group"])
def test_scan_kept_states_are_the_states_entering_each_32_steps(bc):
    """The float32 forward's states[:, :, c] is the state after the first 32 c steps: the last state
    of the scan of those steps alone (0 for c = 0)."""
    args = scan_inputs(2, 19, 5, 70, bc, 1, "float32", ("D", "z", "delta_bias"))
    *_, states = on_device("selective_scan_forward", "cpu", *args, True, True)
    assert states.shape == (2, 19, 3, 5)
    np.testing.assert_array_equal(states[:, :, 0], 0)
    for c in (1, 2):
        head = [a[..., :32 * c] if a is not None and a.ndim >= 3 else a for a in args]  # time is last
        _, last, _ = on_device("selective_scan_forward", "cpu", *head, True)
        assert_close(states[:, :, c], last, kind="reduction")


def test_scan_softplus_extremes(device):
    """The vectorised float32 softplus keeps relative accuracy for very negative and large inputs."""
    if device == "cpu" and _C is None:
        pytest.skip("tinyml._C is not built")
    args = scan_inputs(1, 3, 4, 8, "group", 1, "float32", ("delta_bias",))
    args[1] = np.linspace(-30, 30, 24, dtype=np.float32).reshape(1, 3, 8)
    ref = implementations("selective_scan_forward")["reference"]
    close(on_device("selective_scan_forward", device, *args, True), ref(*args, True), "float32")
    close(on_device("selective_scan_forward", device, *args, True, True)[:2], ref(*args, True)[:2], "float32")


def test_scan_decay_out_of_range_in_one_chunk(device):
    """The float32 C++ forward proves |dt A log2 e| <= 125 per block and chunk of 64 steps and only then
    drops the exp's clamps: a chunk with a huge dt (exp underflows to 0) or a NaN takes the clamped
    path while the others stay fast; both must match the reference (NaN from the NaN step on)."""
    if device == "cpu" and _C is None:
        pytest.skip("tinyml._C is not built")
    if device == "cuda" and TRITON_INTERPRETER:
        pytest.skip("too slow for Triton's interpreter (runs on a GPU)")
    args = scan_inputs(1, 20, 4, 150, "group", 1, "float32", ("D", "delta_bias"))
    delta = args[1]
    delta[0, 3, 70:75] = 200.0  # block 0, chunk 1: dt A down to -400
    delta[0, 17, 140] = np.nan  # block 1, chunk 2
    ref = implementations("selective_scan_forward")["reference"]
    want = ref(*args, True)[:2]
    got = on_device("selective_scan_forward", device, *args, True)[:2]
    assert np.isnan(got[0][0, 17, 140:]).all() and not np.isnan(got[0][0, 17, :140]).any()
    for g, w in zip(got, want):
        assert_close(g, w, kind="reduction")


@pytest.mark.skipif(_C is None, reason="tinyml._C is not built")
def test_scan_bindings_check_arguments():
    f = np.float32
    u = np.zeros((2, 3, 5), f)
    A, B = np.zeros((3, 4), f), np.zeros((2, 1, 4, 5), f)  # B, C: (batch, G, N, L)
    with pytest.raises(ValueError, match=r"delta has shape \(2, 3, 4\)"):
        _C.selective_scan_forward(u, np.zeros((2, 3, 4), f), A, B, B, None, None, None, False)
    with pytest.raises(ValueError, match=r"B has shape \(2, 2, 4, 5\), expected \(3, 4\) or \(2, G, 4, 5\)"):
        _C.selective_scan_forward(u, u, A, np.zeros((2, 2, 4, 5), f), B, None, None, None, False)
    with pytest.raises(ValueError, match=r"C has shape \(2, 1, 5, 4\)"):
        _C.selective_scan_forward(u, u, A, B, np.zeros((2, 1, 5, 4), f), None, None, None, False)
    with pytest.raises(ValueError, match=r"D has shape \(4,\), expected \(3,\)"):
        _C.selective_scan_forward(u, u, A, B, B, np.zeros(4, f), None, None, False)
    with pytest.raises(TypeError, match="expected dtype float32, got float64"):
        _C.selective_scan_forward(u, u.astype(np.float64), A, B, B, None, None, None, False)
    with pytest.raises(ValueError, match="dlast_state has shape"):
        _C.selective_scan_backward(u, u, A, B, B, None, None, None, False, u, np.zeros((2, 3), f))
    with pytest.raises(ValueError, match=r"states has shape \(2, 3, 2, 4\), expected \(2, 3, 1, 4\)"):
        _C.selective_scan_backward(u, u, A, B, B, None, None, None, False, u, None, np.zeros((2, 3, 2, 4), f))
