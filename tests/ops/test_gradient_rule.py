"""One gradient source per op, one rule (ops/unary.py's docstring, docs/internals.md section 7): the
first-order backward runs the fused backward kernel, create_graph=True the tensor formula. Both
must be the same derivative, and the formula must give PyTorch's second derivative."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml.ops import unary
from tinyml.testing import assert_close

# every unary op class and a range inside its domain, away from kinks (relu, abs at 0)
DOMAINS = {"Tanh": (-2, 2), "Sigmoid": (-4, 4), "Relu": (0.2, 2), "Sqrt": (0.2, 3), "Rsqrt": (0.2, 3),
           "Reciprocal": (0.5, 2), "Tan": (-1, 1), "Erf": (-2, 2), "Abs": (0.2, 2), "Exp": (-2, 2),
           "Exp2": (-2, 2), "Expm1": (-2, 2), "Log1p": (-0.5, 2), "Square": (-2, 2), "Sin": (-3, 3),
           "Cos": (-3, 3)}
OPS = sorted(c.__name__ for c in unary._Unary.__subclasses__())


def test_every_unary_op_is_covered():
    assert set(OPS) == set(DOMAINS), "a new unary op needs a domain here"


@pytest.mark.parametrize("name", OPS)
def test_kernel_and_formula_are_one_derivative(kernels, name):
    cls, (low, high) = getattr(unary, name), DOMAINS[name]
    rng = np.random.default_rng(len(name))
    xs, gs = rng.uniform(low, high, (4, 5)), rng.standard_normal((4, 5))
    fn = getattr(tinyml, name.lower())
    x, g = tinyml.tensor(xs, requires_grad=True), tinyml.tensor(gs)
    (first,) = tinyml.autograd.grad((fn(x) * g).sum(), x)
    (differentiable,) = tinyml.autograd.grad((fn(x) * g).sum(), x, create_graph=True)
    assert first.grad_fn is None
    assert_close(first, differentiable.detach(), msg=f"{name}: kernel {cls.grad_kernel or '-'} vs formula")
    xt = torch.tensor(xs, requires_grad=True)
    yt = getattr(torch, name.lower())(xt) * torch.tensor(gs)
    (gt,) = torch.autograd.grad(yt.sum(), xt, create_graph=True)
    assert_close(first, gt.detach().numpy())
    if differentiable.requires_grad:  # not for relu: its derivative is constant away from 0
        (second,) = tinyml.autograd.grad(differentiable.sum(), x)
        (second_t,) = torch.autograd.grad(gt.sum(), xt)
        assert_close(second, second_t.numpy(force=True), kind="reduction")  # torch: a ZeroTensor for abs


def test_the_switch_is_grad_mode_inside_backward():
    x = tinyml.tensor([0.5, 1.0], requires_grad=True)
    y = x.tanh()
    with tinyml.no_grad():  # first order: the kernel
        plain = unary.Tanh.backward(y.grad_fn, tinyml.ones(2))
    with tinyml.enable_grad():  # create_graph: the formula, recorded
        recorded = unary.Tanh.backward(y.grad_fn, tinyml.ones(2))
    assert plain.grad_fn is None and recorded.grad_fn is not None
    assert_close(plain, recorded.detach())
