"""The autograd engine: accumulation, hooks, grad modes, retain_graph, in-place and versions."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml.testing import assert_close


def both(values, requires_grad=True):
    a = np.asarray(values, dtype=np.float32)
    return tinyml.tensor(a, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


def test_gradient_accumulates_over_uses_and_calls():
    x, xt = both([1.0, -2.0, 3.0])
    for lib_x in (x, xt):
        y = lib_x * lib_x + lib_x * 3
        y.sum().backward()
        (lib_x * 2).sum().backward()
    assert_close(x.grad, xt.grad)


def test_diamond_graph_and_shared_subexpression():
    x, xt = both([0.5, 1.5])
    outs = []
    for lib_x in (x, xt):
        a = lib_x.exp()
        b = a * a
        c = a + b
        outs.append(c)
        (c * b).sum().backward()
    assert_close(x.grad, xt.grad, kind="reduction")


def test_no_grad_and_enable_grad():
    x = tinyml.ones(2, requires_grad=True)
    with tinyml.no_grad():
        y = x * 2
        with tinyml.enable_grad():
            z = x * 3
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None

    @tinyml.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    tinyml.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    tinyml.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_detach_shares_storage_and_cuts_graph():
    x = tinyml.ones(3, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = x * 1.0
    y.detach().numpy()[0] = 5.0
    assert y.detach().numpy()[0] == 5.0


def test_requires_grad_only_for_floats():
    with pytest.raises(RuntimeError, match="floating point"):
        tinyml.tensor([1, 2]).requires_grad_()


def test_retain_graph_allows_second_backward():
    x, xt = both([1.0, 2.0])
    for lib_x in (x, xt):
        y = (lib_x.exp() * lib_x).sum()
        y.backward(retain_graph=True)
        y.backward()
    assert_close(x.grad, xt.grad)


def test_backward_needs_scalar_or_gradient():
    x = tinyml.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs; got shape \(3,\)"):
        y.backward()
    y.backward(tinyml.tensor([1.0, 2.0, 3.0]))
    assert_close(x.grad, np.array([2.0, 4.0, 6.0], dtype=np.float32))
    with pytest.raises(RuntimeError, match="does not require grad"):
        tinyml.ones(2).sum().backward()


def test_hooks_on_leaf_and_intermediate():
    x = tinyml.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = x * 3
    handle = y.register_hook(lambda g: g * 10)
    y.sum().backward()
    assert_close(x.grad, np.array([30.0, 30.0], dtype=np.float32))
    assert len(seen) == 1
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert_close(x.grad, np.array([3.0, 3.0], dtype=np.float32))


def test_retain_grad_keeps_intermediate_grad():
    x = tinyml.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    y.retain_grad()
    (y * 2).sum().backward()
    assert_close(y.grad, np.array([2.0, 2.0], dtype=np.float32))
    assert (x * x).grad is None


def test_leaf_grad_is_not_aliased_between_leaves():
    a = tinyml.ones(3, requires_grad=True)
    b = tinyml.ones(3, requires_grad=True)
    (a + b).sum().backward()
    with tinyml.no_grad():
        a.grad.zero_()
    assert_close(b.grad, np.ones(3, dtype=np.float32))


def test_autograd_grad_does_not_touch_dot_grad():
    x = tinyml.tensor([1.0, 2.0], requires_grad=True)
    (gx,) = tinyml.autograd.grad((x ** 3).sum(), x)
    assert_close(gx, np.array([3.0, 12.0], dtype=np.float32))
    assert x.grad is None


def test_create_graph_gives_second_derivative():
    x = tinyml.tensor([1.0, 2.0], requires_grad=True)
    (gx,) = tinyml.autograd.grad((x ** 3).sum(), x, create_graph=True)
    gx.sum().backward()
    assert_close(x.grad, np.array([6.0, 12.0], dtype=np.float32))


def test_inplace_on_intermediate_matches_torch():
    x, xt = both([0.5, -1.0, 2.0])
    for lib_x in (x, xt):
        y = lib_x * 2
        y.add_(1)
        y.mul_(lib_x)
        y.sum().backward()
    assert_close(x.grad, xt.grad)


def test_inplace_on_leaf_requiring_grad_raises_outside_no_grad():
    p = tinyml.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        p.mul_(2)
    with tinyml.no_grad():
        p.mul_(2)
    assert p._version[0] == 1
    assert_close(p, np.full(3, 2.0, dtype=np.float32))


def test_modified_saved_tensor_is_caught():
    a = tinyml.randn(3, requires_grad=True)
    b = a.exp()
    c = b.exp()  # saves its output c, not b; tanh saves b's output...
    d = b.tanh()  # saves tanh(b) output; Log would save b itself:
    e = b.log()
    with tinyml.no_grad():
        b.add_(1)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        e.sum().backward()
    del c, d


def test_inplace_result_dtype_and_shape_checks():
    x = tinyml.zeros(3, dtype=tinyml.int64)
    with pytest.raises(RuntimeError, match="can't be cast"):
        x.add_(1.5)
    y = tinyml.zeros(3)
    with pytest.raises(RuntimeError, match=r"doesn't match the broadcast shape \(2, 3\)"):
        y.add_(tinyml.ones(2, 3))


def test_copy_broadcasts_and_converts():
    z = tinyml.zeros(2, 3)
    z.copy_(tinyml.tensor([1, 2, 3]))
    assert_close(z, np.array([[1, 2, 3], [1, 2, 3]], dtype=np.float32))


def test_views_share_version_counter():
    x = tinyml.zeros(4)
    v = x.view(2, 2)
    assert v._version is x._version
    with tinyml.no_grad():
        v.add_(1)
    assert x._version[0] == 1
    assert_close(x, np.ones(4, dtype=np.float32))


def test_gradcheck_through_composite():
    x = tinyml.randn(3, 4, dtype=tinyml.float64, requires_grad=True)
    w = tinyml.randn(4, dtype=tinyml.float64, requires_grad=True)
    assert tinyml.testing.gradcheck(lambda a, b: (a * b + 1.0).tanh().softmax(-1).log(), [x, w])


# ---- gradients handed in by user code (checked as torch checks them; see tinyml/_grad_checks.py) ----
@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "bool"])
def test_backward_gradient_of_another_dtype_is_cast_like_torch(dtype):
    """torch's engine casts a root gradient to its tensor's dtype: the leaf's grad stays float32."""
    g = np.array([1, 0, 3])
    (x, xt) = both([1.0, 2.0, 3.0])
    (x * 2).backward(tinyml.tensor(g).to(getattr(tinyml, dtype)))
    (xt * 2).backward(torch.tensor(g).to(getattr(torch, dtype)))
    assert x.grad.dtype is tinyml.float32 and xt.grad.dtype is torch.float32
    assert_close(x.grad, xt.grad.numpy())
    (gx,) = tinyml.autograd.grad(x * 2, x, tinyml.tensor(g).to(getattr(tinyml, dtype)))
    assert gx.dtype is tinyml.float32
    assert_close(gx, xt.grad.numpy())


def test_backward_create_graph_with_a_float64_gradient():
    x, xt = both([1.0, -2.0])
    g, gt = tinyml.tensor([1.0, 2.0], dtype=tinyml.float64, requires_grad=True), torch.tensor(
        [1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (x * x).backward(g, create_graph=True)
    (xt * xt).backward(gt, create_graph=True)
    assert x.grad.dtype is tinyml.float32 and x.grad.requires_grad == xt.grad.requires_grad
    x.grad.sum().backward()  # second order through the cast, back to the float64 gradient
    xt.grad.sum().backward()
    assert g.grad.dtype is tinyml.float64
    assert_close(g.grad, gt.grad.numpy())


def test_backward_gradient_errors_name_both_values():
    x = tinyml.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient 0 has shape \(4,\) and output 0 has shape \(3,\)"):
        (x * 2).backward(tinyml.ones(4))
    with pytest.raises(RuntimeError, match=r"gradient 0 has shape \(1,\) and output 0 has shape \(3,\)"):
        (x * 2).backward(tinyml.ones(1))  # broadcastable is not enough (torch refuses it too)
    with pytest.raises(TypeError, match="gradients must be Tensors or None, got ndarray"):
        (x * 2).backward(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="got float"):
        (x * 2).sum().backward(2.0)
    with pytest.raises(RuntimeError, match="got 2 tensors and 1 gradients"):
        tinyml.autograd.backward([x * 2, x * 3], [tinyml.ones(3)])
    assert x.grad is None
    if tinyml.cuda.is_available():
        with pytest.raises(RuntimeError, match="gradient 0 is on device cuda.* output 0 is on device cpu"):
            (x * 2).backward(tinyml.ones(3, device="cuda"))


def named_hook(lib, make):
    def returns_value(g):
        return make(lib, g)
    return returns_value


HOOK_RESULTS = [
    (lambda lib, g: 1.5, TypeError, "returned float; a tensor hook must return a Tensor or None"),
    (lambda lib, g: np.ones(2, np.float32), TypeError, "returned ndarray"),
    (lambda lib, g: g.double(), RuntimeError, "gradient's dtype from tinyml.float32 to tinyml.float64"),
    (lambda lib, g: g.half(), RuntimeError, "dtype from tinyml.float32 to tinyml.float16"),
    (lambda lib, g: lib.ones(3), RuntimeError, r"changed the gradient's shape from \(2,\) to \(3,\)"),
    (lambda lib, g: lib.ones(1), RuntimeError, r"shape from \(2,\) to \(1,\)"),
]


@pytest.mark.parametrize("on_leaf", [True, False])
@pytest.mark.parametrize("case", range(len(HOOK_RESULTS)))
def test_hook_results_are_checked_like_torch(on_leaf, case):
    """torch refuses a hook that returns a non-Tensor (TypeError) or changes the gradient's shape
    or dtype (RuntimeError): it does not cast. tinyml's messages name the hook and both values."""
    make, exc, msg = HOOK_RESULTS[case]
    for lib in (torch, tinyml):
        x = lib.ones(2, requires_grad=True)
        t = x if on_leaf else x * 1
        t.register_hook(named_hook(lib, make))
        with pytest.raises(exc, match=None if lib is torch else "hook '.*returns_value' .*" + msg):
            (t * 2).sum().backward()


def test_hook_changing_device_raises():
    if not tinyml.cuda.is_available():
        pytest.skip("no cuda device")
    x = tinyml.ones(2, requires_grad=True)
    x.register_hook(lambda g: g.to("cuda"))
    with pytest.raises(RuntimeError, match="changed the gradient's device from cpu to cuda"):
        (x * 2).sum().backward()


def test_hooks_returning_none_or_a_tensor():
    x = tinyml.ones(2, requires_grad=True)
    x.register_hook(lambda g: None)  # None keeps the gradient; a tensor of its kind replaces it
    x.register_hook(lambda g: g * 5)
    (x * 2).sum().backward()
    assert_close(x.grad, np.array([10.0, 10.0], dtype=np.float32))


def test_function_backward_in_another_dtype_is_cast_at_the_leaf():
    """A custom Function whose backward returns float64 for a float32 input: torch's engine casts."""
    class Twice(tinyml.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return (g * 2).double()

    class TwiceT(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return (g * 2).double()

    x, xt = both([1.0, 2.0])
    Twice.apply(x).sum().backward()
    TwiceT.apply(xt).sum().backward()
    assert x.grad.dtype is tinyml.float32 and xt.grad.dtype is torch.float32
    assert_close(x.grad, xt.grad.numpy())


def test_retain_grad_keeps_the_tensor_dtype():
    """A Function whose backward returns float64 for a float32 intermediate: the retained grad and
    the leaf's grad are float32, as torch casts them."""
    class ToDouble(tinyml.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1

        @staticmethod
        def backward(ctx, g):
            return g.double()

    class ToDoubleT(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1

        @staticmethod
        def backward(ctx, g):
            return g.double()

    x, xt = both([1.0, 2.0])
    h, ht = x * 3, xt * 3
    h.retain_grad()
    ht.retain_grad()
    ToDouble.apply(h).sum().backward()
    ToDoubleT.apply(ht).sum().backward()
    assert h.grad.dtype is tinyml.float32 and ht.grad.dtype is torch.float32
    assert x.grad.dtype is tinyml.float32
    assert_close(h.grad, ht.grad.numpy())
    assert_close(x.grad, xt.grad.numpy())
