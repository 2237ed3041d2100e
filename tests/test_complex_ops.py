"""Complex tensors' ops, forward and backward against torch on random complex inputs (PyTorch's
gradient convention z.grad = dL/dx + i dL/dy), gradcheck in float64 through view_as_real, views
sharing storage, and the backward errors of complex outputs."""
import numpy as np
import pytest
import torch
from complex_helpers import check_against_torch, crandn

import tinyml
from tinyml.testing import gradcheck

Z, W = crandn(3, 4), crandn(3, 4, seed=2)
R = np.random.default_rng(3).standard_normal((3, 4))
POS = np.abs(R) + 0.5

UNARY = {
    "neg": lambda T, a: -a,
    "exp": lambda T, a: a.exp(),
    "reciprocal": lambda T, a: a.reciprocal(),
    "abs": lambda T, a: a.abs(),
    "angle": lambda T, a: a.angle(),
    "conj": lambda T, a: a.conj() * a,
    "real_imag": lambda T, a: a.real * 3 + a.imag * a.real,
    "holomorphic": lambda T, a: a.sqrt() * a.rsqrt() + a.square() + a.sin() * a.cos() - a.tan() + a.tanh(),
    "holomorphic_2": lambda T, a: a.sigmoid() + T.exp2(a) * T.expm1(a) + T.log1p(a),
    "logs": lambda T, a: a.log() + a.log2() * a.log10(),
    "pow_int": lambda T, a: a ** 3,
    "pow_float": lambda T, a: a ** -1.5,
    "pow_complex": lambda T, a: a ** (0.5 + 1j),
    "rpow": lambda T, a: 2 ** a,
    "sum": lambda T, a: a.sum(),
    "sum_dim": lambda T, a: a.sum(0, keepdim=True),
    "mean": lambda T, a: a.mean(1),
    "scalar_ops": lambda T, a: (a * (1 + 2j) - 0.5) / (2 - 1j) + 3,
    "view_as_real": lambda T, a: T.view_as_real(a) * T.view_as_real(a),
    "movement": lambda T, a: a.reshape(4, 3).permute(1, 0)[1:, ::2].unsqueeze(0).expand(2, 2, 2),
    "transpose_flatten": lambda T, a: a.t().flatten().view(2, 6).squeeze(),
    "index": lambda T, a: a[T.tensor([2, 0, 2])],
    "split": lambda T, a: a.split([1, 3], 1)[1] * a.chunk(2, 1)[0].sum(),
    "unbind": lambda T, a: a.unbind(0)[1],
    "narrow_select": lambda T, a: a.narrow(1, 1, 2).select(0, 2),
    "where": lambda T, a: T.where(T.tensor([True, False, True, True]), a, 0),
    "cast": lambda T, a: a.to(T.complex64).to(T.complex128),
    "clone": lambda T, a: a.clone().contiguous() * a.t().contiguous().t(),
    "matmul": lambda T, a: a @ a.mT,
    "matvec": lambda T, a: a @ a[0],
    "linear": lambda T, a: T.nn.functional.linear(a, a[:2], a[0, :2]),
    "copies": lambda T, a: a.repeat(2, 1).flip(0).roll(1, 1).tril() + a.triu(1).repeat(2, 1),
    "pad": lambda T, a: T.nn.functional.pad(a, (1, 2)),
    "masked_fill": lambda T, a: a.masked_fill(T.tensor([True, False, True, False]), 1 + 2j),
    "diagonal_trace": lambda T, a: T.diagonal(a) * T.trace(a[:, :3]),
    "products": lambda T, a: T.outer(a[0], a[1])[:3] + T.dot(a[0], a[2]) + T.mv(a[:, :3], a[1, :3])[:, None],
    "einsum_bmm": lambda T, a: T.einsum("ij,kj->ik", a, a) + T.bmm(a[None], a.mT[None])[0],
}
BINARY = {
    "add": lambda T, a, b: a + b,
    "sub": lambda T, a, b: a - 2 * b,
    "mul": lambda T, a, b: a * b,
    "div": lambda T, a, b: a / b,
    "cat": lambda T, a, b: T.cat([a, b], 1),
    "stack": lambda T, a, b: T.stack([a, b], -1),
    "matmul": lambda T, a, b: a @ b.mT,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_torch(name):
    tol = {"rtol": 1e-6, "atol": 1e-7} if name == "cast" else {}
    check_against_torch(UNARY[name], Z, **tol)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_matches_torch(name):
    check_against_torch(BINARY[name], Z, W)


@pytest.mark.parametrize("name", ["add", "mul", "div"])
def test_real_operand_promotes_and_gets_a_real_gradient(name):
    out = check_against_torch(BINARY[name], Z, R)
    assert out.dtype is tinyml.complex128


def test_broadcasting_reduces_complex_gradients():
    check_against_torch(lambda T, a, b: a * b + b, Z, crandn(4, seed=5))
    check_against_torch(lambda T, a, b: a / b, Z[:, :1], crandn(4, seed=5))


def test_complex_and_polar_build_from_real_parts():
    check_against_torch(lambda T, a, b: T.complex(a, b), R, R * 2)
    check_against_torch(lambda T, a, b: T.complex(a, b), R, R[0])  # broadcast
    check_against_torch(lambda T, a, b: T.polar(a, b), POS, R)
    check_against_torch(lambda T, a: T.view_as_complex(a), R.reshape(6, 2))


def test_real_inputs_through_casts_and_views():
    check_against_torch(lambda T, a: a.to(T.complex128) * (1 - 1j), R)
    check_against_torch(lambda T, a: a.angle(), R - 0.5)  # real input: 0 or pi, zero gradient


def test_float32_gives_complex64_results():
    z = tinyml.tensor(Z.astype(np.complex64), requires_grad=True)
    y = (z * z).exp().sum()
    assert y.dtype is tinyml.complex64
    tinyml.view_as_real(y).sum().backward()
    assert z.grad.dtype is tinyml.complex64
    tz = torch.tensor(Z.astype(np.complex64), requires_grad=True)
    torch.view_as_real((tz * tz).exp().sum()).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), tz.grad.numpy(), rtol=1e-5, atol=1e-5)


def _real_fn(op):
    """op on complex tensors as a real function of (..., 2) float64 tensors, for gradcheck."""
    def f(*xs):
        y = op(tinyml, *(tinyml.view_as_complex(x) for x in xs))
        return tinyml.view_as_real(y) if y.is_complex() else y
    return f


@pytest.mark.parametrize("name", ["exp", "reciprocal", "abs", "angle", "pow_float", "scalar_ops", "movement",
                                  "matmul", "conj"])
def test_gradcheck_unary_through_view_as_real(name):
    x = tinyml.tensor(np.stack([Z.real, Z.imag], -1), requires_grad=True)
    assert gradcheck(_real_fn(UNARY[name]), [x])


@pytest.mark.parametrize("name", ["mul", "div", "matmul"])
def test_gradcheck_binary_through_view_as_real(name):
    xs = [tinyml.tensor(np.stack([a.real, a.imag], -1), requires_grad=True) for a in (Z, W)]
    assert gradcheck(_real_fn(BINARY[name]), xs)


def test_second_derivatives_match_torch():
    def f(T, a, b):
        return (a * b).exp() / (a + 2) + a.abs() * b
    grads = []
    for lib in (tinyml, torch):
        a, b = lib.tensor(Z, requires_grad=True), lib.tensor(W, requires_grad=True)
        loss = lib.view_as_real(f(lib, a, b)).pow(2).sum()
        ga, gb = lib.autograd.grad(loss, [a, b], create_graph=True)
        (lib.view_as_real(ga).pow(2).sum() + (gb.abs() ** 2).sum()).backward()
        grads.append((a.grad.numpy().copy(), b.grad.numpy().copy()))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_second_derivatives_through_views_match_torch():
    grads = []
    for lib in (tinyml, torch):
        a = lib.tensor(Z, requires_grad=True)
        y = lib.view_as_real((a[1:, ::2] * a[:2, 1::2]).exp()).sum()
        y = y + lib.view_as_real(a.diagonal() ** 3).sum()
        (g,) = lib.autograd.grad(y, [a], create_graph=True)
        lib.view_as_real(g).pow(2).sum().backward()
        grads.append(a.grad.numpy().copy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-9, atol=1e-9)


def test_real_imag_and_view_as_real_are_views():
    z = tinyml.tensor(Z)
    z.real[0, 0] = 7.0
    z.imag[1] = -1.0
    r = tinyml.view_as_real(z)
    r[2, 3, 1] = 9.0
    assert z[0, 0].item() == complex(7.0, Z[0, 0].imag)
    assert (z.imag[1] == -1.0).all() and z[2, 3].item().imag == 9.0
    c = tinyml.view_as_complex(r)
    c[0, 1] = 5j
    assert z[0, 1].item() == 5j
    assert z.real._version is z._version and r.shape == (3, 4, 2) and r.stride() == (8, 2, 1)
    strided = tinyml.tensor(Z)[:, ::2]
    assert tinyml.view_as_real(strided).stride() == (8, 4, 1)


def test_assigning_the_parts_writes_into_the_tensor():
    z, tz = tinyml.zeros(2, dtype=tinyml.cfloat), torch.zeros(2, dtype=torch.cfloat)
    for t, lib in ((z, tinyml), (tz, torch)):
        t.real = lib.ones(2)
        t.imag = lib.tensor([2.0, 3.0])
        t.imag[0] = 5  # a view: the write reaches t
    np.testing.assert_array_equal(z.numpy(), tz.numpy())
    z.real = 0.5
    assert z.tolist() == [0.5 + 5j, 0.5 + 3j]


def test_backward_of_a_complex_output_needs_a_gradient():
    z = tinyml.tensor(Z, requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for real scalar outputs"):
        z.sum().backward()
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for real scalar outputs"):
        (z * 2).backward()
    y = z * (1 + 1j)
    y.backward(tinyml.ones(3, 4, dtype=tinyml.complex128))  # an explicit gradient: grad * conj(1 + i)
    np.testing.assert_allclose(z.grad.numpy(), np.full((3, 4), 1 - 1j))


def test_leaves_and_requires_grad():
    z = tinyml.zeros(2, dtype=tinyml.complex64, requires_grad=True)
    assert z.requires_grad and z.is_leaf
    (z.abs() + tinyml.view_as_real(z).sum()).sum().backward()
    assert z.grad.dtype is tinyml.complex64
    with pytest.raises(RuntimeError, match="floating point and complex dtype"):
        tinyml.zeros(2, dtype=tinyml.int64, requires_grad=True)


def test_abs_gradient_is_zero_at_zero_and_nan_propagates():
    z = tinyml.tensor([0j, complex(float("nan"), 1.0), 3 + 4j], requires_grad=True)
    tz = torch.tensor([0j, complex(float("nan"), 1.0), 3 + 4j], requires_grad=True)
    z.abs().sum().backward()
    tz.abs().sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), tz.grad.numpy())
    assert np.isnan(tinyml.tensor([complex(float("nan"), 0)]).exp().item().real)


def test_index_select_and_gather_of_complex_tensors_join_the_graph_as_torchs():
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((4, 3)) + 1j * rng.standard_normal((4, 3))).astype(np.complex64)
    w = (rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))).astype(np.complex64)
    z, zt = tinyml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    idx = [2, 0, 2]
    (tinyml.index_select(z, 0, tinyml.tensor(idx)) * tinyml.tensor(w)).abs().sum().backward()
    (torch.index_select(zt, 0, torch.tensor(idx)) * torch.tensor(w)).abs().sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), zt.grad.numpy(), rtol=1e-5, atol=1e-6)
    z.grad, zt.grad = None, None
    gi = [[0, 2, 1], [1, 1, 0]]
    (tinyml.gather(z, 0, tinyml.tensor(gi)) ** 2).real.sum().backward()
    (torch.gather(zt, 0, torch.tensor(gi)) ** 2).real.sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), zt.grad.numpy(), rtol=1e-5, atol=1e-6)
