"""selective_state_update (ops/selective_state_update.py), one generation step of the selective scan,
against mamba_ssm's selective_state_update_ref written in PyTorch (forward, backward, the state
written in place) and against the sequence scan (stepping from a zero state gives selective_scan's
outputs and last state), on every backend of the family (the numpy reference, C++, Triton)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import assert_close, gradcheck

RED = {"kind": "reduction"}
backend_device = backend_device_fixture()


def torch_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """mamba_ssm's selective_state_update_ref (state (b, d, n), B/C (b, n) or (b, g, n)); state
    replaced by the new one (detached, as the kernel's in-place write)."""
    d = x.shape[1]
    B = B[:, None] if B.ndim == 2 else B
    C = C[:, None] if C.ndim == 2 else C
    if dt_bias is not None:
        dt = dt + dt_bias
    dt = TF.softplus(dt) if dt_softplus else dt
    dA = torch.exp(dt[..., None] * A)
    Bd = B.repeat_interleave(d // B.shape[1], dim=1)
    Cd = C.repeat_interleave(d // C.shape[1], dim=1)
    new = state.clone() * dA + Bd * (dt * x)[..., None]
    out = (new * Cd).sum(-1)
    if D is not None:
        out = out + x * D
    if z is not None:
        out = out * TF.silu(z)
    state.copy_(new.detach())
    return out


CASES = [  # (batch, dim, dstate, groups or 0 for (batch, dstate) B/C)
    (2, 5, 4, 0), (1, 6, 16, 2), (3, 4, 3, 4), (2, 17, 5, 1), (1, 1, 1, 0)]


@pytest.mark.parametrize("bt,d,n,g", CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("full", [True, False], ids=["D_z_bias_softplus", "bare"])
def test_selective_state_update_matches_torch(backend_device, bt, d, n, g, full):
    rng = np.random.default_rng(bt * 100 + d * 10 + n)
    bc = (bt, g, n) if g else (bt, n)
    state0 = rng.standard_normal((bt, d, n)).astype(np.float32)
    state, state_t = tinyml.tensor(state0, device=backend_device), torch.tensor(state0)
    shapes = [(bt, d), (bt, d), (d, n), bc, bc] + ([(d,), (bt, d), (d,)] if full else [])
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    arrays[2] = -np.exp(arrays[2])  # A < 0, as Mamba's -exp(A_log)
    if not full:
        arrays[1] = np.abs(arrays[1])  # dt > 0 without the softplus

    def ours(*a):
        return tinyml.selective_state_update(state, *a, dt_softplus=full)

    def theirs(*a):
        return torch_state_update(state_t, *a, dt_softplus=full)

    check_op(None, ours, theirs, inputs=arrays, device=backend_device, **RED)
    assert_close(state.cpu(), state_t, **RED)


def test_selective_state_update_steps_equal_the_scan(backend_device):
    """From a zero state, L steps give selective_scan's outputs (B/C varying per step, grouped) and
    its last state; then the state keeps going from where the scan stopped."""
    rng = np.random.default_rng(7)
    bt, d, n, g, length = 2, 6, 5, 2, 9
    dev = backend_device
    u, delta, z = (tinyml.tensor(rng.standard_normal((bt, d, length)).astype(np.float32), device=dev)
                   for _ in range(3))
    A = tinyml.tensor(-np.exp(rng.standard_normal((d, n))).astype(np.float32), device=dev)
    B, C = (tinyml.tensor(rng.standard_normal((bt, g, n, length)).astype(np.float32), device=dev)
            for _ in range(2))
    D, bias = (tinyml.tensor(rng.standard_normal(d).astype(np.float32), device=dev) for _ in range(2))
    out, last = tinyml.selective_scan(u, delta, A, B, C, D, z, bias, True, return_last_state=True)
    state = tinyml.zeros(bt, d, n, device=dev)
    steps = [tinyml.selective_state_update(state, u[:, :, t], delta[:, :, t], A, B[..., t], C[..., t], D,
                                           z[:, :, t], bias, True) for t in range(length)]
    assert_close(tinyml.stack(steps, 2).cpu(), out.cpu(), **RED)
    assert_close(state.cpu(), last.cpu(), **RED)


def test_selective_state_update_float64_noncontiguous_state(backend_device):
    """float64, and a state that is a transposed view: the step writes through the view."""
    rng = np.random.default_rng(3)
    bt, d, n = 2, 3, 4
    s0 = rng.standard_normal((bt, d, n))
    base = tinyml.tensor(np.ascontiguousarray(s0.transpose(0, 2, 1)), device=backend_device)
    view = base.transpose(1, 2)  # (bt, d, n), not contiguous
    args = [rng.standard_normal(s) for s in ((bt, d), (bt, d), (d, n), (bt, n), (bt, n), (d,), (bt, d), (d,))]
    args[2] = -np.exp(args[2])
    out = tinyml.selective_state_update(view, *(tinyml.tensor(a, device=backend_device) for a in args),
                                        dt_softplus=True)
    s_t = torch.tensor(s0)
    want = torch_state_update(s_t, *(torch.tensor(a) for a in args), dt_softplus=True)
    assert out.dtype is tinyml.float64
    assert_close(out.cpu(), want, **RED)
    assert_close(base.cpu().numpy().transpose(0, 2, 1), s_t.numpy(), **RED)


def test_selective_state_update_nonfinite_as_torch(backend_device):
    """NaN and inf in x, dt and z land where the PyTorch reference puts them."""
    rng = np.random.default_rng(9)
    bt, d, n = 2, 4, 3
    s0 = rng.standard_normal((bt, d, n)).astype(np.float32)
    x, dt, z = (rng.standard_normal((bt, d)).astype(np.float32) for _ in range(3))
    x[0, 1], dt[1, 2], z[0, 3], z[1, 0] = np.nan, np.inf, -np.inf, np.inf
    A = -np.exp(rng.standard_normal((d, n))).astype(np.float32)
    B, C = (rng.standard_normal((bt, n)).astype(np.float32) for _ in range(2))
    state = tinyml.tensor(s0, device=backend_device)
    args = [tinyml.tensor(a, device=backend_device) for a in (x, dt, A, B, C)]
    zt = tinyml.tensor(z, device=backend_device)
    out = tinyml.selective_state_update(state, *args, z=zt, dt_softplus=True)
    s_t = torch.tensor(s0)
    want = torch_state_update(s_t, *(torch.tensor(a) for a in (x, dt, A, B, C)), z=torch.tensor(z),
                              dt_softplus=True)
    np.testing.assert_allclose(out.cpu().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.cpu().numpy(), s_t.numpy(), rtol=1e-5, atol=1e-6)


def test_selective_state_update_gradcheck():
    rng = np.random.default_rng(5)
    bt, d, n, g = 2, 4, 3, 2
    state = tinyml.tensor(rng.standard_normal((bt, d, n)))
    snapshot = state.numpy().copy()
    shapes = ((bt, d), (bt, d), (d, n), (bt, g, n), (bt, g, n), (d,), (bt, d), (d,))
    ts = [tinyml.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]

    def step(*a):
        state.numpy()[...] = snapshot  # every evaluation starts from the same state
        return tinyml.selective_state_update(state, *a, dt_softplus=True)

    assert gradcheck(step, ts)


def test_selective_state_update_errors():
    state, x, A, B = tinyml.zeros(2, 4, 3), tinyml.randn(2, 4), -tinyml.rand(4, 3), tinyml.randn(2, 3)
    with pytest.raises(ValueError, match=r"x must be a \(batch, dim\) Tensor, got \(2, 4, 1\)"):
        tinyml.selective_state_update(state, x.unsqueeze(-1), x, A, B, B)
    with pytest.raises(ValueError, match=r"state has shape \(3, 4, 3\), expected \(2, 4, dstate\)"):
        tinyml.selective_state_update(tinyml.zeros(3, 4, 3), x, x, A, B, B)
    with pytest.raises(ValueError, match=r"A has shape \(4, 2\), expected \(4, 3\)"):
        tinyml.selective_state_update(state, x, x, A[:, :2], B, B)
    with pytest.raises(ValueError, match=r"B has shape \(2, 3, 3\), expected \(2, 3\) or \(2, G, 3\) with G "
                                         r"dividing dim = 4"):
        tinyml.selective_state_update(state, x, x, A, tinyml.randn(2, 3, 3), B)
    with pytest.raises(ValueError, match=r"C has shape \(2, 5\)"):
        tinyml.selective_state_update(state, x, x, A, B, tinyml.randn(2, 5))
    with pytest.raises(ValueError, match=r"dt_bias has shape \(3,\), expected \(4,\)"):
        tinyml.selective_state_update(state, x, x, A, B, B, dt_bias=tinyml.randn(3))
    with pytest.raises(TypeError, match="dt has dtype tinyml.float64 but x has dtype tinyml.float32"):
        tinyml.selective_state_update(state, x, x.double(), A, B, B)
    with pytest.raises(RuntimeError, match=r"state \(shape \(2, 4, 3\)\) requires grad"):
        tinyml.selective_state_update(tinyml.zeros(2, 4, 3, requires_grad=True), x, x, A, B, B)


def test_selective_state_update_binding_checks_sizes():
    """The C++ binding refuses mismatched arrays itself (the op's checks bypassed)."""
    from tinyml import _C

    f32 = np.float32
    state, x = np.zeros((2, 4, 3), f32), np.zeros((2, 4), f32)
    A, B = np.zeros((4, 3), f32), np.zeros((2, 1, 3), f32)
    with pytest.raises(ValueError, match=r"A has shape \(4, 2\), expected \(4, 3\)"):
        _C.selective_state_update(state, x, x, A[:, :2].copy(), B, B, None, None, None, True)
    with pytest.raises(ValueError, match=r"C has shape \(2, 3, 3\)"):
        _C.selective_state_update(state, x, x, A, B, np.zeros((2, 3, 3), f32), None, None, None, True)
    with pytest.raises(ValueError, match=r"z has shape \(2, 3\), expected \(2, 4\)"):
        _C.selective_state_update(state, x, x, A, B, B, None, np.zeros((2, 3), f32), None, True)
    with pytest.raises(ValueError, match="state is read-only"):
        ro = state.copy()
        ro.flags.writeable = False
        _C.selective_state_update(ro, x, x, A, B, B, None, None, None, True)
