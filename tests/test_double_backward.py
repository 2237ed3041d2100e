"""Double backward: create_graph=True, then differentiate the gradient again.

Every Function subclass in tinyml/ops (found by walking the ops modules) has a case in
tests/double_backward_cases.py. Its double backward matches torch's second derivatives (float64,
1e-6), or, for an op marked `once_differentiable` (its backward runs a fused kernel only), raises
a RuntimeError naming the op: never a second derivative that treats the gradient as a constant.
A Function added without a case fails `test_every_function_has_a_case`.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
from double_backward_cases import ABSTRACT, CASES, make_array

import tinyml
import tinyml.nn.functional as F
import tinyml.ops
from tinyml.autograd import Function

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def function_classes() -> dict:
    """name -> class for every Function subclass defined in a module of tinyml.ops."""
    found: dict = {}
    for info in pkgutil.iter_modules(tinyml.ops.__path__):
        module = importlib.import_module(f"tinyml.ops.{info.name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, Function) and obj.__module__ == module.__name__:
                assert name not in found or found[name] is obj, f"two Functions named {name}"
                found[name] = obj
    return found


FUNCTIONS = function_classes()
PARAMS = [pytest.param(name, k, id=f"{name}-{k}") for name in sorted(CASES) for k in range(len(CASES[name]))]
RAISES = "the backward of {}Backward is not differentiable"


def test_every_function_has_a_case():
    assert len(FUNCTIONS) > 90  # the walk found the ops
    missing = sorted(set(FUNCTIONS) - set(CASES) - ABSTRACT)
    assert not missing, f"Functions with no double-backward case in tests/double_backward_cases.py: {missing}"
    stale = sorted((set(CASES) | ABSTRACT) - set(FUNCTIONS))
    assert not stale, f"cases for Functions that no longer exist: {stale}"


def test_once_differentiable_markers_name_registered_kernels():
    marked = {n: c.once_differentiable for n, c in FUNCTIONS.items() if c.once_differentiable}
    assert marked, "no op is marked once_differentiable"
    unknown = {n: k for n, k in marked.items() if k not in tinyml.backends.kernel_names()}
    assert not unknown, f"once_differentiable names kernels that do not exist: {unknown}"


def _tensors(T, specs, arrays) -> list:
    out = []
    for (kind, _), a in zip(specs, arrays):
        if kind != "const":
            out.append(T.tensor(a, dtype=T.float64, requires_grad=True))
        else:  # weights as float64, ids as int64, masks as bool
            out.append(T.tensor(a, dtype=T.float64) if a.dtype.kind == "f" else T.tensor(a))
    return out


def _graph_functions(t) -> set:
    seen, stack, fns = set(), [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or isinstance(node, tinyml.Tensor):
            continue
        seen.add(id(node))
        fns.add(node.fn)
        stack.extend(e[0] for e in node.next_edges if e is not None)
    return fns


def _first(T, F_, fn, specs, arrays, v):
    """(inputs requiring grad, upstream gradient v as a tensor requiring grad, output, gradients)
    with create_graph=True."""
    xs = _tensors(T, specs, arrays)
    diff = [x for x, (kind, _) in zip(xs, specs) if kind != "const"]
    out = fn(T, F_, *xs)
    gv = T.tensor(np.asarray(v), dtype=T.float64, requires_grad=True)
    return diff, gv, out, T.autograd.grad(out, diff, gv, create_graph=True)


def _second(T, diff, gv, grads, us) -> list:
    """d/d(inputs, v) of sum_i <grad_i, u_i>: the Hessian-vector and the Jacobian-vector parts."""
    s = sum((g * T.tensor(u, dtype=T.float64)).sum() for g, u in zip(grads, us))
    if not s.requires_grad:  # torch: the gradient does not depend on anything (floor, rounding)
        return [None] * (len(diff) + 1)
    return list(T.autograd.grad(s, diff + [gv], allow_unused=True))


def _close(ours, theirs, what: str) -> None:
    for k, (a, b) in enumerate(zip(ours, theirs)):
        a = 0.0 if a is None else a.detach().numpy()
        b = 0.0 if b is None else b.detach().numpy()
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=f"{what} {k}")


@pytest.mark.parametrize("name,k", PARAMS)
def test_double_backward_matches_torch_or_raises(name, k):
    cls, case = FUNCTIONS[name], CASES[name][k]
    if name == "ToDevice" and not tinyml.cuda.is_available():
        pytest.skip("no cuda device and Triton's interpreter is not enabled")
    rng = np.random.default_rng(100 + k)
    arrays = [make_array(spec, rng) for spec in case.inputs]
    out = case.fn(tinyml, F, *_tensors(tinyml, case.inputs, arrays))
    assert cls in _graph_functions(out), f"the case for {name} records no {name} node"
    v = rng.standard_normal(tuple(out.shape))
    diff, gv, out, grads = _first(tinyml, F, case.fn, case.inputs, arrays, v)
    us = [rng.standard_normal(tuple(g.shape)) for g in grads]
    if case.torch_fn is not None:
        torch_fn = case.fn if case.torch_fn is True else case.torch_fn
        t_diff, t_gv, t_out, t_grads = _first(torch, TF, torch_fn, case.inputs, arrays, v)
        _close([out], [t_out], "output")
        _close(grads, t_grads, "first derivative")  # create_graph leaves first-order values as they were
    if cls.once_differentiable:
        with pytest.raises(RuntimeError, match=RAISES.format(name)) as info:
            _second(tinyml, diff, gv, grads, us)
        assert cls.once_differentiable in str(info.value)
        return
    _close(_second(tinyml, diff, gv, grads, us), _second(torch, t_diff, t_gv, t_grads, us),
           "second derivative wrt input")


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_gelu_second_derivative_is_exact_in_the_simple_and_composite_cases():
    # was: "element 0 of tensors does not require grad" (simple), a silently dropped term (composite)
    for f in (lambda F_, x: F_.gelu(x).sum(), lambda F_, x: (F_.gelu(x) * x).sum()):
        x, tx = tinyml.tensor(_x(7), requires_grad=True), torch.tensor(_x(7), requires_grad=True)
        (gx,) = tinyml.autograd.grad(f(F, x), x, create_graph=True)
        (tgx,) = torch.autograd.grad(f(TF, tx), tx, create_graph=True)
        x.grad = None
        (gx * gx).sum().backward()
        (hx,) = torch.autograd.grad((tgx * tgx).sum(), tx)
        np.testing.assert_allclose(x.grad.numpy(), hx.numpy(), rtol=1e-10, atol=1e-12)


def test_kernel_only_backward_raises_on_differentiation_not_before():
    x = tinyml.tensor(_x(1, 2, 5, 5), requires_grad=True)
    w = tinyml.tensor(_x(3, 2, 3, 3, seed=1), requires_grad=True)
    (gw,) = tinyml.autograd.grad(F.conv2d(x, w).sum(), w, create_graph=True)
    assert gw.requires_grad  # dw depends on x: the root gradient is constant, x is not
    first = tinyml.autograd.grad(F.conv2d(x, w).sum(), w)[0]
    np.testing.assert_array_equal(gw.detach().numpy(), first.numpy())  # first-order values unchanged
    message = ("the backward of Conv2dFnBackward is not differentiable (it runs the fused kernel "
               "conv2d_backward); double backward through conv2d is not supported")
    with pytest.raises(RuntimeError) as info:
        tinyml.autograd.grad(gw.sum(), x)
    assert str(info.value) == message
    (gw,) = tinyml.autograd.grad(F.conv2d(x, w).sum(), w, create_graph=True)  # the failed call freed nodes
    with pytest.raises(RuntimeError, match="Conv2dFnBackward is not differentiable"):
        (gw * gw).sum().backward()  # through backward() and a composite graph too
    with tinyml.profiler.profile(), pytest.raises(RuntimeError, match="conv2d_backward"):
        gw2 = tinyml.autograd.grad(F.conv2d(x, w).sum(), w, create_graph=True)[0]
        tinyml.autograd.grad(gw2.sum(), x)


def test_a_linear_op_kernel_gradient_is_differentiable_in_g_only():
    # slice_backward computes L^T g: with a constant g the gradient depends on nothing (as in torch);
    # with a g that depends on x, its derivative is the slice again (an Adjoint node), to any order
    x = tinyml.tensor(_x(4, 3), requires_grad=True)
    (gx,) = tinyml.autograd.grad(x[1:].sum(), x, create_graph=True)
    assert not gx.requires_grad
    tx = torch.tensor(_x(4, 3), requires_grad=True)
    f = lambda t: (t[1:] ** 3).sum()  # noqa: E731
    (gx,) = tinyml.autograd.grad(f(x), x, create_graph=True)
    (hx,) = tinyml.autograd.grad(gx.sum(), x, create_graph=True)
    (tgx,) = torch.autograd.grad(f(tx), tx, create_graph=True)
    (thx,) = torch.autograd.grad(tgx.sum(), tx, create_graph=True)
    third, t_third = tinyml.autograd.grad(hx.sum(), x)[0], torch.autograd.grad(thx.sum(), tx)[0]
    for ours, theirs in ((gx, tgx), (hx, thx), (third, t_third)):
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)


def test_a_user_function_can_be_marked_once_differentiable():
    class Cube(Function):
        once_differentiable = True

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            assert not tinyml.autograd.is_grad_enabled()  # run with grad off, as PyTorch does
            return g * x * x * 3

    x = tinyml.tensor(_x(4), requires_grad=True)
    (gx,) = tinyml.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    np.testing.assert_allclose(gx.detach().numpy(), 3 * _x(4) ** 2)
    with pytest.raises(RuntimeError, match="CubeBackward is not differentiable .it is marked "
                                           "once_differentiable.; double backward through Cube"):
        tinyml.autograd.grad(gx.sum(), x)
