"""Reductions against PyTorch: forward and backward over dims given as int, negative int, tuple
and None, keepdim both ways, 0-d inputs, size-1 dims and non-contiguous views; ties for the
max-style gradients; integer and bool inputs; empty inputs; errors that name their values."""
# ruff: noqa: B023  (the lambdas built in loops are called at once, inside check_op)
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

# (shape, dim): int, negative, tuple, None, a size-1 dim, 0-d inputs
DIM_CASES = [((3, 4, 5), None), ((3, 4, 5), 1), ((3, 4, 5), -1), ((3, 4, 5), (0, 2)), ((3, 4, 5), (-1, 0)),
             ((3, 1, 4), 1), ((6,), 0), ((), None), ((), 0)]


def _cases(min_reduced=1):
    """(shape, dim, keepdim, noncontiguous) for every DIM_CASE with at least `min_reduced` elements per slice."""
    for shape, dim in DIM_CASES:
        dims = range(len(shape)) if dim is None else ((dim,) if isinstance(dim, int) else dim)
        n = math.prod(shape[d] for d in dims) if shape else 1
        if n < min_reduced:
            continue
        for keepdim in (False, True):
            yield shape, dim, keepdim, len(shape) >= 2 and keepdim


def _run_cases(tm_fn, th_fn, min_reduced=1, **kw):
    for shape, dim, keepdim, nc in _cases(min_reduced):
        try:
            check_op([shape], lambda x: tm_fn(tinyml, x, dim, keepdim), lambda x: th_fn(torch, x, dim, keepdim),
                     kind="reduction", noncontiguous=nc, **kw)
        except AssertionError as e:
            raise AssertionError(f"shape {shape}, dim {dim}, keepdim {keepdim}, noncontiguous {nc}: {e}") from e


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
    fn = lambda lib, x, d, k: getattr(lib, name)(x, dim=d, keepdim=k)
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
    fn = lambda lib, x, d, k: lib.prod(x) if d is None else lib.prod(x, d, keepdim=k)
    for shape, dim, keepdim, nc in _cases():
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


def test_max_min_over_all_split_ties(kernels):
    ties = np.array([[1.0, 3.0, 3.0], [2.0, 3.0, 0.0]])
    for fn in (lambda x: x.max(), lambda x: x.min(), lambda x: x.amax((0, 1)), lambda x: x.amin(-1, True)):
        check_op([], fn, inputs=[ties])
    for shape in [(3, 4, 5), (), (1,)]:
        check_op([shape], lambda x: x.max(), noncontiguous=True)
        check_op([shape], lambda x: tinyml.min(x), lambda x: torch.min(x))


def test_max_min_with_dim(kernels):
    for name in ("max", "min"):
        for shape, dim, keepdim, nc in _cases():
            if dim is None or isinstance(dim, tuple):
                continue
            out = check_op([shape], lambda x: getattr(x, name)(dim, keepdim),
                           lambda x: getattr(x, name)(dim, keepdim), noncontiguous=nc)
            assert out.values is out[0] and out.indices.dtype is tinyml.int64
        # ties: the first extremum's index gets the whole gradient, as in PyTorch
        ties = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
        check_op([], lambda x: getattr(tinyml, name)(x, 1), lambda x: getattr(torch, name)(x, 1), inputs=[ties])
        check_op([], lambda x: getattr(x, name)(dim=0, keepdim=True), inputs=[ties])


def test_max_binary_form_is_maximum(kernels):
    check_op([(3, 4), (4,)], lambda a, b: tinyml.max(a, b), lambda a, b: torch.max(a, b))
    check_op([(3, 4), (3, 4)], lambda a, b: a.min(b), lambda a, b: a.min(b))


def test_amax_amin_grad_ties_nd(kernels):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(4, 3, 5)).astype(np.float64)  # many ties
    for dim in [0, -1, (0, 2), None]:
        for keepdim in (False, True):
            for name in ("amax", "amin"):
                d = tuple(range(3)) if dim is None else dim
                check_op([], lambda t: getattr(t, name)(d, keepdim), inputs=[x])


def test_argmax_argmin(kernels):
    rng = np.random.default_rng(1)
    ties = rng.integers(0, 3, size=(4, 5, 3)).astype(np.float64)
    for name in ("argmax", "argmin"):
        for dim in [None, 0, -1, 1]:
            for keepdim in (False, True):
                check_op([], lambda x: getattr(x, name)(dim, keepdim), inputs=[ties], grad=False)
                check_op([(3, 4)], lambda x: getattr(tinyml, name)(x, dim=dim if dim != 1 else None,
                                                                    keepdim=keepdim),
                         lambda x: getattr(torch, name)(x, dim=dim if dim != 1 else None, keepdim=keepdim),
                         noncontiguous=True, grad=False)
        check_op([()], lambda x: getattr(x, name)(), grad=False)
        check_op([()], lambda x: getattr(x, name)(0, True), grad=False)
        check_op([(3, 5)], lambda x: getattr(x, name)(1), dtype="int32", grad=False)


def test_cumsum_cumprod(kernels):
    for name in ("cumsum", "cumprod"):
        for shape, dim in [((3, 4, 5), 0), ((3, 4, 5), -1), ((3, 4, 5), 1), ((6,), 0), ((), 0), ((), -1),
                           ((2, 1), 1)]:
            check_op([shape], lambda x: getattr(tinyml, name)(x, dim), lambda x: getattr(torch, name)(x, dim),
                     kind="reduction", noncontiguous=len(shape) >= 2, low=0.5, high=1.5)
        check_op([(3, 4)], lambda x: getattr(x, name)(dim=1, dtype=tinyml.float64),
                 lambda x: getattr(x, name)(dim=1, dtype=torch.float64), kind="reduction")


def test_cumprod_grad_with_zeros(kernels):
    # rows with no zero, one zero (first, middle, last) and two zeros
    x = np.array([[1.5, -2.0, 0.5, 3.0, 0.7], [0.0, 2.0, -1.0, 1.5, 2.0], [1.2, 2.0, 0.0, 3.0, -0.5],
                  [2.0, 0.5, 1.5, 1.1, 0.0], [1.3, 0.0, 2.0, 0.0, 1.7]])
    check_op([], lambda t: t.cumprod(1), inputs=[x], kind="reduction")
    check_op([], lambda t: t.cumprod(0), inputs=[x], kind="reduction")
    t = tinyml.tensor(x, dtype=tinyml.float64, requires_grad=True)
    assert gradcheck(lambda a: tinyml.cumprod(a, 1), [t])


def test_logsumexp_is_stable(kernels):
    # huge values do not overflow, all -inf gives -inf, a +inf gives +inf (forward as torch)
    x = np.array([[1000.0, 1000.5, -1000.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, 2.0]])
    check_op([], lambda t: t.logsumexp(1), inputs=[x], grad=False)
    check_op([], lambda t: t.logsumexp(1), inputs=[x[:1] * 88.0])
    check_op([], lambda t: t.logsumexp(1, keepdim=True), inputs=[x[:1]])


NORMS = [2, 1, float("inf"), float("-inf"), 0, 3, 0.5, 1.5, -1, "fro"]


@pytest.mark.parametrize("p", NORMS, ids=str)
def test_norm(kernels, p):
    for shape, dim, keepdim, nc in _cases():
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
                             getattr(torch, name)(x, dim, keepdim), dtype=dtype, low=low, high=high, grad=False)
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
               lambda a: a.norm(3, dim=1), lambda a: a.norm(), lambda a: a.cumsum(0), lambda a: a.mean(-1, True)):
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
    "sum": lambda x: x.sum(1), "mean": lambda x: x.mean(), "var": lambda x: x.var(1), "std": lambda x: x.std(0),
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
