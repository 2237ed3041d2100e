"""Reductions (ops/reduce.py) against PyTorch: forward and backward over dims given as int, negative
int, tuple and None, keepdim both ways, 0-d inputs, size-1 dims and non-contiguous views; integer
and bool inputs; empty inputs; errors that name their values; on reference and cpu kernels, and on
every backend of the family (backend_device: the numpy reference, the cpu device's kernels, the
Triton kernels). max/min/argmax are in test_reduce_minmax.py, cumsum/cumprod in test_cumulative.py."""
# ruff: noqa: B023  (the lambdas built in loops are called at once, inside check_op)

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from family_devices import backend_device_fixture
from helpers import check_op
from reduce_helpers import dim_cases, with_zeros

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()



def _run_cases(tm_fn, th_fn, min_reduced=1, **kw):
    for shape, dim, keepdim, nc in dim_cases(min_reduced):
        try:
            check_op([shape], lambda x: tm_fn(tinyml, x, dim, keepdim),
                     lambda x: th_fn(torch, x, dim, keepdim), kind="reduction", noncontiguous=nc, **kw)
        except AssertionError as e:
            raise AssertionError(f"shape {shape}, dim {dim}, keepdim {keepdim}, noncontiguous {nc}: "
                                 f"{e}") from e


def _all_dims(x, dim):
    return tuple(range(x.ndim)) if dim is None else dim


SIMPLE = {
    "sum": lambda lib, x, d, k: lib.sum(x, dim=d, keepdim=k),
    "mean": lambda lib, x, d, k: lib.mean(x, dim=d, keepdim=k),
    "amax": lambda lib, x, d, k: lib.amax(x, dim=_all_dims(x, d), keepdim=k),
    "amin": lambda lib, x, d, k: x.amin(dim=_all_dims(x, d), keepdim=k),
    "logsumexp": lambda lib, x, d, k: lib.logsumexp(x, _all_dims(x, d), keepdim=k),
    "method_sum": lambda lib, x, d, k: x.sum(d, k),
}


@pytest.mark.parametrize("name", list(SIMPLE))
def test_simple_reductions(kernels, name):
    _run_cases(SIMPLE[name], SIMPLE[name])


@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std(kernels, name):
    def fn(lib, x, d, k):
        return getattr(lib, name)(x, dim=d, keepdim=k)
    _run_cases(fn, fn, min_reduced=2)
    # correction= / unbiased= in every spelling PyTorch accepts
    for tm_call, th_call in [
        (lambda x: getattr(x, name)(1, unbiased=False), lambda x: getattr(x, name)(1, unbiased=False)),
        (lambda x: getattr(tinyml, name)(x, correction=0), lambda x: getattr(torch, name)(x, correction=0)),
        (lambda x: getattr(tinyml, name)(x, (0, 1), correction=2.5, keepdim=True),
         lambda x: getattr(torch, name)(x, (0, 1), correction=2.5, keepdim=True)),
        (lambda x: getattr(tinyml, name)(x, False), lambda x: getattr(torch, name)(x, False)),
        (lambda x: getattr(tinyml, f"{name}_mean")(x, -1), lambda x: getattr(torch, f"{name}_mean")(x, -1)),
        (lambda x: getattr(tinyml, f"{name}_mean")(x, correction=0, keepdim=True),
         lambda x: getattr(torch, f"{name}_mean")(x, correction=0, keepdim=True)),
    ]:
        check_op([(4, 5)], tm_call, th_call, kind="reduction")


def test_std_of_constant_has_zero_grad(kernels):
    # a constant slice has std 0: PyTorch's gradient is 0 there, not NaN
    check_op([], lambda x: x.std(1), lambda x: x.std(1), kind="reduction",
             inputs=[np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])])


def test_prod(kernels):
    def fn(lib, x, d, k):
        return lib.prod(x) if d is None else lib.prod(x, d, keepdim=k)
    for shape, dim, keepdim, nc in dim_cases():
        if isinstance(dim, tuple):
            continue  # torch.prod takes one int dim
        check_op([shape], lambda x: fn(tinyml, x, dim, keepdim), lambda x: fn(torch, x, dim, keepdim),
                 kind="reduction", noncontiguous=nc, low=0.5, high=1.5)


def test_prod_grad_with_zeros(kernels):
    x = np.array([[0.0, 2.0, 3.0, -1.5], [0.0, 0.0, 2.0, 1.0], [1.5, -2.0, 0.5, 3.0]])
    check_op([], lambda t: t.prod(1), lambda t: t.prod(1), inputs=[x], kind="reduction")
    check_op([], lambda t: t.prod(0, keepdim=True), lambda t: t.prod(0, keepdim=True), inputs=[x],
             kind="reduction")
    check_op([], lambda t: t.prod(), lambda t: t.prod(), inputs=[x[1:]], kind="reduction")
    for rows in (x[:1], x[1:2], x[2:]):  # one zero, two zeros, none
        t = tinyml.tensor(rows, dtype=tinyml.float64, requires_grad=True)
        assert gradcheck(lambda a: tinyml.prod(a), [t])


def test_logsumexp_is_stable(kernels):
    # huge values do not overflow, all -inf gives -inf, a +inf gives +inf (forward as torch)
    x = np.array([[1000.0, 1000.5, -1000.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0]])
    check_op([], lambda t: t.logsumexp(1), inputs=[x], grad=False)
    check_op([], lambda t: t.logsumexp(1), inputs=[x[:1] * 88.0])
    check_op([], lambda t: t.logsumexp(1, keepdim=True), inputs=[x[:1]])


NORMS = [2, 1, float("inf"), float("-inf"), 0, 3, 0.5, 1.5, -1, "fro"]


@pytest.mark.parametrize("p", NORMS, ids=str)
def test_norm(kernels, p):
    for shape, dim, keepdim, nc in dim_cases():
        if p == "fro" and isinstance(dim, tuple) and len(dim) > 2:
            continue
        check_op([shape], lambda x: tinyml.norm(x, p, dim, keepdim), lambda x: torch.norm(x, p, dim, keepdim),
                 kind="reduction", noncontiguous=nc)
    check_op([(4, 5)], lambda x: x.norm(p=p, dim=-1), kind="reduction")


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), "fro"], ids=str)
def test_norm_grad_at_zero_is_zero(kernels, p):
    z = tinyml.zeros(2, 3, requires_grad=True)
    z.norm(p).backward()
    assert np.array_equal(z.grad.numpy(), np.zeros((2, 3))), z.grad
    # one zero row among nonzero ones: the zero row gets 0, the others torch's gradient
    x = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    check_op([], lambda t: t.norm(p, dim=1), lambda t: torch.norm(t, p, dim=1), inputs=[x], kind="reduction")


def test_all_any(kernels):
    for dtype, low, high in [("float32", -1, 1), ("bool", 0, 1), ("int32", 0, 2)]:
        for dim in [None, 0, -1, (0, 2), ()]:
            for keepdim in (False, True):
                for name in ("all", "any"):
                    check_op([(3, 4, 2)], lambda x: getattr(tinyml, name)(x, dim, keepdim),
                             lambda x: getattr(torch, name)(x) if dim is None and not keepdim else
                             getattr(torch, name)(x, dim, keepdim), dtype=dtype, low=low, high=high,
                             grad=False)
    check_op([()], lambda x: x.all(), dtype="bool", grad=False)
    check_op([()], lambda x: x.any(0, True), grad=False)


def test_int_and_bool_inputs(kernels):
    int_ops = [lambda x: x.sum(), lambda x: x.sum(1, keepdim=True), lambda x: x.prod(0), lambda x: x.prod(),
               lambda x: x.amax(1), lambda x: x.amin(), lambda x: x.max(), lambda x: x.min(0),
               lambda x: x.cumsum(1), lambda x: x.cumprod(0), lambda x: x.sum(dtype=tinyml.float32)]
    th_dtype_fix = {10: lambda x: x.sum(dtype=torch.float32)}
    for dtype in ("int32", "int64", "bool"):
        for i, fn in enumerate(int_ops):
            check_op([(3, 4)], fn, th_dtype_fix.get(i, fn), dtype=dtype, low=-3, high=3, grad=False)
    check_op([(3, 4)], lambda x: x.logsumexp(1), dtype="int64", kind="reduction", grad=False)
    check_op([(3, 4)], lambda x: x.mean(1, dtype=tinyml.float32), lambda x: x.mean(1, dtype=torch.float32),
             dtype="int64", kind="reduction")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision(kernels, dtype):
    for fn in (lambda x: x.sum(1), lambda x: x.mean(), lambda x: x.amax(0), lambda x: x.cumsum(1),
               lambda x: x.norm(dim=1), lambda x: x.var(1), lambda x: x.logsumexp(-1)):
        check_op([(5, 40)], fn, dtype=dtype, kind="reduction")


def test_empty(kernels):
    e = tinyml.zeros(0, 3)
    th = torch.zeros(0, 3)
    for fn in (lambda x: x.sum(), lambda x: x.sum(0), lambda x: x.sum(1), lambda x: x.mean(0),
               lambda x: x.prod(0), lambda x: x.logsumexp(0), lambda x: x.all(0), lambda x: x.any(),
               lambda x: x.amax(1), lambda x: x.max(1).values, lambda x: x.argmax(1), lambda x: x.norm(dim=0),
               lambda x: x.norm(float("inf"), dim=1), lambda x: x.cumsum(0), lambda x: x.cumprod(1),
               lambda x: x.mean()):
        a, b = fn(e), fn(th)
        assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
        tinyml.testing.assert_close(a, b)
    assert tinyml.sum(tinyml.zeros(0)).item() == 0
    for fn, msg in [(lambda x: x.max(), r"max\(\): Expected reduction dim to be specified"),
                    (lambda x: x.min(0), r"min\(\): Expected reduction dim 0 to have non-zero size"),
                    (lambda x: x.amax(), r"amax\(\): Expected reduction dim 0 to have non-zero size"),
                    (lambda x: x.argmin(), r"argmin\(\): Expected reduction dim to be specified"),
                    (lambda x: x.norm(float("inf")), "cannot compute the inf norm on an empty tensor")]:
        with pytest.raises(RuntimeError, match=msg):
            fn(e)


def test_gradcheck_float64(kernels):
    rng = np.random.default_rng(5)
    x = tinyml.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    for fn in (lambda a: a.std(1), lambda a: a.var((0, 1), correction=0), lambda a: a.logsumexp(0),
               lambda a: a.norm(3, dim=1), lambda a: a.norm(), lambda a: a.cumsum(0),
               lambda a: a.mean(-1, True)):
        assert gradcheck(fn, [x])


def test_errors_name_values(kernels):
    x = tinyml.randn(2, 3)
    with pytest.raises(IndexError, match=r"got 2\) for a tensor with 2 dimensions of shape \(2, 3\)"):
        x.sum(2)
    with pytest.raises(IndexError, match=r"\[-2, 1\], but got -3"):
        x.amax((0, -3))
    with pytest.raises(IndexError, match=r"cumsum\(\): Dimension out of range .* got 5"):
        x.cumsum(5)
    with pytest.raises(IndexError, match=r"max\(\): .* got 1\) for a tensor with 0 dimensions"):
        tinyml.tensor(1.0).max(1)
    with pytest.raises(RuntimeError, match=r"dim 1 appears multiple times in the list of dims \(1, -1\)"):
        x.sum((1, -1))
    with pytest.raises(RuntimeError, match="mean.*Got: tinyml.int64"):
        tinyml.tensor([1, 2]).mean()
    with pytest.raises(RuntimeError, match="std and var only support floating point.*int64"):
        tinyml.tensor([1, 2]).var()
    with pytest.raises(RuntimeError, match="vector_norm.*Got tinyml.int64"):
        tinyml.tensor([1, 2]).norm()
    with pytest.raises(RuntimeError, match="cannot specify both unbiased=True and correction=0"):
        x.std(1, unbiased=True, correction=0)
    with pytest.raises(TypeError, match=r"dim must be an int, got \(0, 1\); use amax"):
        x.max((0, 1))
    with pytest.raises(TypeError, match="dim must be an int or a tuple of ints, got float"):
        x.sum(1.0)
    with pytest.raises(RuntimeError, match="argmax.*bool"):
        (x > 0).argmax()
    with pytest.raises(NotImplementedError, match="nuc"):
        x.norm("nuc")


DOUBLE = {
    "sum": lambda x: x.sum(1), "mean": lambda x: x.mean(), "var": lambda x: x.var(1),
    "std": lambda x: x.std(0),
    "logsumexp": lambda x: x.logsumexp(1), "prod": lambda x: x.prod(1), "cumsum": lambda x: x.cumsum(1),
    "cumprod": lambda x: x.cumprod(0), "amax": lambda x: x.amax(1), "max": lambda x: x.max(),
    "max_dim": lambda x: x.max(1)[0], "min_dim": lambda x: x.min(0, keepdim=True)[0],
    "norm2": lambda x: x.norm(dim=1), "norm1": lambda x: x.norm(1, dim=0), "norm3": lambda x: x.norm(3),
    "norm_half": lambda x: x.norm(0.5, dim=1), "norm_inf": lambda x: x.norm(float("inf"), dim=1),
}


@pytest.mark.parametrize("name", list(DOUBLE))
def test_double_backward(kernels, name):
    """create_graph=True: the gradient is itself differentiable (checked against torch's)."""
    fn = DOUBLE[name]
    a = np.random.default_rng(7).uniform(-2, 2, (3, 4))
    a[0, :2] = a[1, 1]  # ties for the max-style reductions
    x, t = tinyml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    w = np.random.default_rng(8).standard_normal(tuple(fn(t * t).shape))
    # out^2: the upstream gradient of the reduction depends on x too
    (g,) = tinyml.autograd.grad((fn(x * x) ** 2 * tinyml.tensor(w)).sum(), x, create_graph=True)
    (gt,) = torch.autograd.grad((fn(t * t) ** 2 * torch.tensor(w)).sum(), t, create_graph=True)
    tinyml.testing.assert_close(g, gt, kind="reduction", msg="first order:")
    (g * g).sum().backward()
    (gt * gt).sum().backward()
    tinyml.testing.assert_close(x.grad, t.grad, kind="reduction", msg="second order:")


def test_double_backward_prod_with_zeros_refuses(kernels):
    x = tinyml.tensor([[1.0, 0.0, 2.0]], requires_grad=True)
    with pytest.raises(NotImplementedError, match=r"prod: the double backward .*input shape \(1, 3\)"):
        tinyml.autograd.grad(x.prod(), x, create_graph=True)


RED = {"kind": "reduction"}


@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, -1), (3.0, 0)])
def test_normalize(kernels, p, dim):
    check_op([(3, 4)], lambda x: F.normalize(x, p, dim), lambda x: TF.normalize(x, p, dim), **RED)


def test_normalize_zero_rows_stay_finite(kernels):
    x = np.zeros((2, 3))
    x[1] = [3.0, 4.0, 0.5]
    check_op(None, lambda t: F.normalize(t), lambda t: TF.normalize(t), inputs=[x], **RED)


# -- every backend of the family ------------------------------------------------------------------
R = {"kind": "reduction"}


def test_sum_over_dims(backend_device):
    check_op([(3, 4, 5)], lambda x: x.sum((0, 2)), device=backend_device, noncontiguous=True, **R)
    check_op([(3, 4)], lambda x: x.sum(), device=backend_device, **R)
    check_op([(3, 4)], lambda x: x.sum(-1, keepdim=True), device=backend_device, **R)


def test_prod_var_std_logsumexp(backend_device):
    check_op([(3, 4, 5)], lambda x: x.prod(1), device=backend_device, **R)
    check_op([()], lambda x: x.prod(), device=backend_device, **R)
    check_op(None, lambda x: x.prod(1), inputs=[with_zeros()], device=backend_device, **R)
    check_op(None, lambda x: x.prod(), inputs=[with_zeros()], device=backend_device, **R)
    check_op([(3, 4, 5)], lambda x: x.var((0, 2)), noncontiguous=True, device=backend_device, **R)
    check_op([(3, 4, 5)], lambda x: x.std(-1, keepdim=True, correction=0), device=backend_device, **R)
    check_op([(2, 3000)], lambda x: x.logsumexp(1), device=backend_device, **R)
    check_op([(3, 4)], lambda x: x.logsumexp((0, 1)), dtype="float64", device=backend_device, **R)


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), float("-inf")])
def test_norm_on_every_backend(backend_device, p):
    check_op([(3, 5)], lambda x: x.norm(p=p, dim=1), device=backend_device, **R)


def test_all_any_on_every_backend(backend_device):
    check_op([(3, 4, 5)], lambda x: (x > 0).all(1), device=backend_device, grad=False)
    check_op([(3, 4, 5)], lambda x: (x > 1.5).any((0, 2), keepdim=True), device=backend_device, grad=False)


def test_bf16_reductions_accumulate_in_float32(backend_device):
    check_op([(4, 9)], lambda x: x.var(1), dtype="bfloat16", device=backend_device, **R)
    check_op([(4, 9)], lambda x: x.cumsum(1), dtype="bfloat16", device=backend_device, **R)
    # padding lanes must not leak
    check_op([(3, 4)], lambda x: x.amax(1) + x.prod(1), dtype="bfloat16", device=backend_device, **R)
    check_op([(3, 4)], lambda x: x.cumprod(1).logsumexp(0), dtype="float16", device=backend_device, **R)


def test_few_long_rows_split_into_chunks(backend_device):
    """Rows past 8192 elements reduce in chunks on the Triton backend (partials, then a combining launch)."""
    check_op([(2, 9000)], lambda x: x.norm(dim=1) + x.norm(p=3, dim=1) + x.amax(1) - x.amin(1),
             device=backend_device, **R)
    check_op([(9000,)], lambda x: x.norm(p=float("inf")), grad=False, device=backend_device, **R)
    check_op([(2, 9000)], lambda x: (x > -3.5).all(1) | (x > 3.5).any(1), device=backend_device, grad=False)
    check_op([(2, 9000)], lambda x: (x * 0.0005 + 1).prod(1), grad=False, device=backend_device, **R)
    nan = np.random.default_rng(0).standard_normal(9000).astype(np.float32)
    nan[5000] = np.nan
    check_op(None, lambda x: x.amax() + x.norm(), inputs=[nan], grad=False, device=backend_device, **R)
