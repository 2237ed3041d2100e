"""ops/composed.py (nansum, nanmean, diff, tensordot, tile, numel, hardsigmoid, hardswish, cummax,
cummin), PolynomialLR, fft.fftfreq / rfftfreq and tinyml.special against torch."""
import numpy as np
import pytest
import torch

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck


def _pair(a, requires_grad=True):
    a = np.asarray(a)
    return (tinyml.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _check(fn_t, fn_torch, *arrays, atol=1e-6):
    ts, qs = zip(*[_pair(a) for a in arrays])
    out_t, out_q = fn_t(*ts), fn_torch(*qs)
    np.testing.assert_allclose(out_t.detach().numpy(), out_q.detach().numpy(), atol=atol, equal_nan=True)
    g = np.random.default_rng(1).standard_normal(out_q.shape).astype(out_q.detach().numpy().dtype)
    out_t.backward(tinyml.tensor(g))
    out_q.backward(torch.tensor(g))
    for a, b in zip(ts, qs):
        if a.grad is None and b.grad is None:  # an input the output does not use (diff with n = 0)
            continue
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol, equal_nan=True)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 5)).astype(np.float32)
XN = X.copy()
XN[0, 1] = XN[2, 4] = np.nan
XN[1, :] = np.nan


@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_nansum_nanmean(dim, keepdim):
    if dim is None and keepdim:
        pytest.skip("torch takes no keepdim without dim")
    kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    _check(lambda x: tinyml.nansum(x, **kw), lambda x: torch.nansum(x, **kw), XN)
    partial = XN.copy()
    partial[1, 0] = 1.0  # an all-NaN slice differs in its gradient only (ops/composed.py's nanmean)
    _check(lambda x: x.nanmean(**kw), lambda x: x.nanmean(**kw), partial)
    t = tinyml.tensor(XN)
    np.testing.assert_allclose(t.nanmean(**kw).numpy(), torch.tensor(XN).nanmean(**kw).numpy(),
                               equal_nan=True, rtol=1e-6)


@pytest.mark.parametrize("n", [0, 1, 2, 6])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_diff(n, dim):
    _check(lambda x: tinyml.diff(x, n, dim), lambda x: torch.diff(x, n, dim), X)
    p, a = np.ones((3, 5), np.float32), np.full((3, 5), 2.0, np.float32)
    both = lambda x, p, a: x.diff(n, dim, prepend=p, append=a)  # noqa: E731  (same call on both libraries)
    _check(both, both, X, p, a)


@pytest.mark.parametrize("shape_a, shape_b, dims", [
    ((3, 4, 2), (5, 6), 0), ((3, 4, 2), (2, 3), 1), ((3, 4, 2), (4, 2, 3), 2),
    ((3, 4, 2), (4, 5, 3), ([1, 0], [0, 2])),
    ((3, 4, 2), (5, 2), ([2], [1])), ((3, 4), (2, 5), ([], []))])
def test_tensordot(shape_a, shape_b, dims):
    a, b = RNG.standard_normal(shape_a), RNG.standard_normal(shape_b)
    _check(lambda a, b: tinyml.tensordot(a, b, dims), lambda a, b: torch.tensordot(a, b, dims), a, b)


def test_tensordot_errors_name_the_shapes():
    a, b = tinyml.randn(3, 4), tinyml.randn(5, 6)
    with pytest.raises(ValueError, match=r"size 4.*size 5"):
        tinyml.tensordot(a, b, ([1], [0]))
    with pytest.raises(ValueError, match="dims=3"):
        tinyml.tensordot(a, b, 3)


@pytest.mark.parametrize("reps", [(2,), (2, 3), (1, 2, 1), 3])
def test_tile_and_numel(reps):
    _check(lambda x: x.tile(reps), lambda x: x.tile(reps), X)
    assert tinyml.numel(tinyml.tensor(X)) == torch.numel(torch.tensor(X)) == 15


def test_hardsigmoid_hardswish_and_modules():
    x = np.linspace(-5, 5, 41).astype(np.float32) + 0.013  # no point exactly at +-3
    _check(F.hardsigmoid, torch.nn.functional.hardsigmoid, x)
    _check(F.hardswish, torch.nn.functional.hardswish, x)
    v = tinyml.tensor(x)
    np.testing.assert_allclose(tinyml.nn.Hardswish()(v).numpy(),
                               torch.nn.Hardswish()(torch.tensor(x)).numpy(), atol=1e-6)
    np.testing.assert_allclose(tinyml.nn.Hardsigmoid()(v).numpy(),
                               torch.nn.Hardsigmoid()(torch.tensor(x)).numpy(), atol=1e-6)
    nan = tinyml.tensor([float("nan"), float("inf"), -float("inf")])
    np.testing.assert_array_equal(F.hardswish(nan).numpy(), torch.nn.functional.hardswish(
        torch.tensor([float("nan"), float("inf"), -float("inf")])).numpy())


@pytest.mark.parametrize("name", ["cummax", "cummin"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cummax_cummin_values_indices_grad(name, dim):
    x = np.round(RNG.standard_normal((4, 6)) * 2).astype(np.float32)  # rounding makes ties
    x[1, 2] = np.nan
    a, b = _pair(x)
    va, ia = getattr(a, name)(dim)
    vb, ib = getattr(b, name)(dim)
    np.testing.assert_array_equal(va.detach().numpy(), vb.detach().numpy())
    np.testing.assert_array_equal(ia.numpy(), ib.numpy())
    g = RNG.standard_normal(x.shape).astype(np.float32)
    va.backward(tinyml.tensor(g))
    vb.backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-6)


def test_gradcheck_float64():
    x = tinyml.tensor(RNG.standard_normal((3, 4)), requires_grad=True)
    y = tinyml.tensor(RNG.standard_normal((4, 2)), requires_grad=True)
    assert gradcheck(lambda x, y: tinyml.tensordot(x, y, 1), (x, y))
    assert gradcheck(lambda x: tinyml.diff(x, 2, 1), (x,))
    assert gradcheck(lambda x: tinyml.cummax(x, 1).values, (x,))
    assert gradcheck(lambda x: F.hardswish(x), (x,))


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_lr_matches_torch(power):
    pt, pq = tinyml.nn.Parameter(tinyml.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    ot, oq = tinyml.optim.SGD([pt], lr=0.1), torch.optim.SGD([pq], lr=0.1)
    st = tinyml.optim.lr_scheduler.PolynomialLR(ot, total_iters=4, power=power)
    sq = torch.optim.lr_scheduler.PolynomialLR(oq, total_iters=4, power=power)
    for _ in range(7):
        assert st.get_last_lr() == pytest.approx(sq.get_last_lr(), rel=1e-12)
        ot.step()
        oq.step()
        st.step()
        sq.step()
    with pytest.raises(ValueError, match="total_iters"):
        tinyml.optim.lr_scheduler.PolynomialLR(ot, total_iters=0)


@pytest.mark.parametrize("n", [1, 2, 7, 8])
def test_fftfreq_rfftfreq(n):
    np.testing.assert_allclose(tinyml.fft.fftfreq(n, 0.3).numpy(), torch.fft.fftfreq(n, 0.3).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(tinyml.fft.rfftfreq(n, 2.0).numpy(), torch.fft.rfftfreq(n, 2.0).numpy(),
                               rtol=1e-6)
    assert tinyml.fft.rfftfreq(n, dtype=tinyml.float64).dtype == tinyml.float64
    with pytest.raises(ValueError, match="n must be"):
        tinyml.fft.fftfreq(0)


def test_special_namespace():
    x = RNG.uniform(0.1, 0.9, (3, 4))
    t, q = tinyml.tensor(x), torch.tensor(x)
    for name in ("expit", "logit", "erf", "erfinv", "expm1", "log1p", "exp2", "sinc"):
        np.testing.assert_allclose(getattr(tinyml.special, name)(t).numpy(),
                                   getattr(torch.special, name)(q).numpy(), rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(tinyml.special.softmax(t, 1).numpy(), torch.special.softmax(q, 1).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(tinyml.special.xlogy(t, t).numpy(), torch.special.xlogy(q, q).numpy(),
                               rtol=1e-6)
