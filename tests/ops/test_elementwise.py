"""Binary arithmetic, comparison, logical and bitwise ops (ops/elementwise.py): forward and backward
against PyTorch, on reference and cpu kernels, and on every backend of the family (backend_device:
the numpy reference, the cpu device's kernels, the Triton kernels). where, min/max, clamp and the
fused pointwise ops are in test_pointwise.py."""
import numpy as np
import pytest
import torch
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()
BROADCAST = [[(3, 4), (3, 4)], [(2, 1, 4), (3, 1)], [(4,), ()], [(), (5, 1)], [(1,), (2, 3)]]


def _same(fn_name):
    return lambda *xs: getattr(xs[0], fn_name)(*xs[1:])


@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "remainder", "fmod", "pow", "minimum",
                                  "maximum"])
def test_binary_broadcast_matches_torch(kernels, name, shapes):
    low, high = (0.2, 2.0) if name in ("pow", "remainder", "fmod", "div") else (-2.0, 2.0)
    fn = _same(name)
    if name == "remainder":  # torch has no derivative for the divisor: gradcheck covers ours below
        def fn(a, b):
            return a.remainder(b.detach())
    check_op(shapes, fn, low=low, high=high)


@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a - b * 2, lambda a, b: a * b / (b * b + 1),
                                lambda a, b: a.add(b, alpha=0.5), lambda a, b: a.sub(b, alpha=2)])
def test_operators_noncontiguous_float64(kernels, op):
    check_op([(4, 5), (4, 5)], op, noncontiguous=True)
    check_op([(3, 2), (2,)], op, dtype="float64")


def test_python_scalars_on_both_sides(kernels):
    check_op([(3, 4)], lambda x: 2 + x * 3 - 1.5 / (x * x + 1) + 2 ** x - (x + 3) ** 0.5 + x ** 2)
    check_op([(3, 4)], lambda x: (1 - x) * 0.5 + x / 4 + 7 % (x.abs() + 1).detach() + x % 0.75, low=0.1)
    check_op([(5,)], lambda x: (x ** 3) ** -1.0 + 3.0 ** x, low=0.5)


def test_zero_dim_tensor_operands(kernels):
    check_op([(), (3, 4)], lambda s, x: s * x + x / (s * s + 1) - s)
    check_op([(), ()], lambda s, t: (s * t + s ** 2) / (t * t + 1))


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_integer_arithmetic(dtype):
    check_op([(3, 4), (4,)], lambda a, b: a + b * 3 - a * 2, dtype=dtype, low=-5, high=5)
    check_op([(3, 4), (4,)], lambda a, b: a / (b * b + 1), dtype=dtype, low=-5, high=5)  # true div -> float32
    check_op([(3, 4), (4,)], lambda a, b: a // (b * b + 1) + a % (b * b + 1), dtype=dtype, low=-9, high=9)
    check_op([(6,)], lambda a: a ** 2 + 2 ** a.abs() + a.fmod(3) + a.remainder(-4), dtype=dtype, low=-5,
             high=5)
    check_op([(6,)], lambda a: a * 1.5 + a / 2 + (a > 1.5).int(), dtype=dtype, low=-5, high=5)


def test_bool_arithmetic_follows_torch():
    check_op([(4,), (4,)], lambda a, b: a + b, dtype="bool")
    check_op([(4,), (4,)], lambda a, b: a * b + 1, dtype="bool")
    check_op([(4,), (4,)], lambda a, b: a * 2.5 + b, dtype="bool")
    with pytest.raises(RuntimeError, match="Subtraction.*bool"):
        tinyml.tensor([True]) - tinyml.tensor([False])


@pytest.mark.parametrize("mode", ["floor", "trunc"])
def test_rounding_division(kernels, mode):
    def fn(a, b):
        return a.div(b, rounding_mode=mode)
    check_op([(3, 4), (4,)], fn, low=-5, high=5)  # float: gradient 0 on both sides, as torch
    check_op([(3, 4)], lambda a: a.div(-0.7, rounding_mode=mode), low=-5, high=5)
    check_op([(3, 4), (4,)], lambda a, b: a.div(b * b + 1, rounding_mode=mode), dtype="int64", low=-9, high=9)
    check_op([(3, 4)], lambda a: a.div(-3, rounding_mode=mode), dtype="int32", low=-9, high=9)


def test_floor_divide_forward(kernels):
    check_op([(3, 4), (3, 4)], lambda a, b: a // b, grad=False, low=-4, high=4)
    check_op([(5,)], lambda a: tinyml.floor_divide(7, a), lambda a: torch.floor_divide(7, a),
             dtype="int64", low=1, high=5)


def test_bool_division_and_remainder_raise():
    t = tinyml.tensor([True, False])
    for fn in (lambda: t // t, lambda: t % t, lambda: t.fmod(t), lambda: t.div(t, rounding_mode="trunc")):
        with pytest.raises(RuntimeError, match="bool"):
            fn()


def test_integer_division_by_zero_raises():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        tinyml.tensor([1, 2]) // tinyml.tensor([0, 1])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        tinyml.tensor([1, 2]) % 0
    assert np.isinf((tinyml.tensor([1.0]) / 0).item())  # floats: inf, as in PyTorch


def test_pow_special_cases(kernels):
    base = np.array([0.0, 0.0, 2.0, -1.5, 1.0])
    exp = np.array([0.0, 2.0, 0.5, 2.0, -1.0])
    check_op([], lambda a, b: a ** b, inputs=[base, exp])
    check_op([], lambda b: 0.0 ** b if isinstance(b, torch.Tensor) else tinyml.pow(0.0, b), inputs=[exp])
    check_op([], lambda a, b: a ** b, inputs=[np.array([1, -1, 2, -2, 3]), np.array([-1, -3, -2, 2, 0])],
             dtype="int64")
    with pytest.raises(RuntimeError, match="negative integer powers"):
        tinyml.tensor([2, 3]) ** -1


@pytest.mark.parametrize("name", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons(kernels, name):
    check_op([(3, 1), (4,)], _same(name), low=-1, high=1, dtype="int64")
    check_op([(3, 4), (4,)], lambda a, b: getattr(a.round(), name)(b.round()))
    check_op([(5,)], lambda a: getattr(a, name)(0.5))
    check_op([(5,)], lambda a: getattr(a, name)(1), dtype="int32", low=-2, high=2)
    check_op([(3,), (3,)], _same(name), dtype="bool")


def test_comparison_operators_and_none():
    x = tinyml.tensor([1.0, 2.0, 3.0])
    assert (x == 2).tolist() == [False, True, False] and (x != 2).tolist() == [True, False, True]
    assert (x < 2).tolist() == [True, False, False] and (2 <= x).tolist() == [False, True, True]
    assert (x == None) is False and (x != None) is True  # noqa: E711 (Tensor.__eq__ with None)
    assert tinyml.equal(x, x.clone()) and not tinyml.equal(x, x + 1)


@pytest.mark.parametrize("name", ["logical_and", "logical_or", "logical_xor"])
def test_logical(kernels, name):
    check_op([(3, 4), (4,)], _same(name), dtype="bool")
    check_op([(3, 4), (3, 1)], _same(name), dtype="int64", low=-1, high=1)
    check_op([(3, 4), (3, 4)], lambda a, b: getattr(a.round(), name)(b), grad=False)


def test_logical_not(kernels):
    for dtype in ("bool", "int32", "float32"):
        check_op([(3, 4)], lambda a: a.logical_not(), dtype=dtype, low=-1, high=1, grad=False)


@pytest.mark.parametrize("name", ["bitwise_and", "bitwise_or", "bitwise_xor"])
def test_bitwise(kernels, name):
    check_op([(3, 4), (4,)], _same(name), dtype="bool")
    check_op([(3, 4), (4,)], _same(name), dtype="int64", low=-20, high=20)
    check_op([(3, 4), (4,)], _same(name), dtype="int32", low=-20, high=20)
    check_op([(5,)], lambda a: getattr(a, name)(6), dtype="int32", low=-20, high=20)


def test_bitwise_operators_and_errors():
    check_op([(4,), (4,)], lambda a, b: (a & b) | (~a ^ b), dtype="int64", low=-9, high=9)
    check_op([(4,), (4,)], lambda a, b: (a & b) | (~a ^ b), dtype="bool")
    with pytest.raises(RuntimeError, match="bitwise_and.*float32"):
        tinyml.ones(2) & tinyml.ones(2)
    with pytest.raises(RuntimeError, match="bitwise_not.*float32"):
        ~tinyml.ones(2)


def test_half_dtypes(kernels):
    for dtype in ("float16", "bfloat16"):
        check_op([(3, 4), (4,)], lambda a, b: (a * b + a / (b * b + 1) - 0.5 * a).maximum(b).clamp(-1, 1),
                 dtype=dtype)
        check_op([(3, 4)], lambda a: a.lerp(a * 2, 0.25) + 1.5, dtype=dtype)


def test_mixed_dtype_gradients_flow_back_in_input_dtypes(kernels):
    a = tinyml.randn(3, dtype=tinyml.float16, requires_grad=True)
    b = tinyml.randn(3, dtype=tinyml.float64, requires_grad=True)
    out = a * b
    assert out.dtype is tinyml.float64
    out.sum().backward()
    assert a.grad.dtype is tinyml.float16 and b.grad.dtype is tinyml.float64


def test_broadcast_error_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"\(3, 4\) and \(5,\)"):
        tinyml.ones(3, 4) + tinyml.ones(5)
    with pytest.raises(TypeError, match="expected a Tensor or a number, got str"):
        tinyml.ones(2) * "x"


def test_gradcheck_binary_float64():
    rng = np.random.default_rng(1)
    a = tinyml.tensor(rng.uniform(0.5, 2, (2, 3)), requires_grad=True)
    b = tinyml.tensor(rng.uniform(0.5, 2, (3,)), requires_grad=True)
    c = tinyml.tensor(rng.uniform(0.5, 2, (2, 1)), requires_grad=True)
    assert gradcheck(lambda x, y: x ** y / (x + y) - x * y, [a, b])
    assert gradcheck(lambda x, y, z: x.lerp(y, z) + x.addcdiv(y, z, value=0.3) + x.remainder(z * 0.3),
                     [a, b, c])
    assert gradcheck(lambda x, y, z: x.clamp(y, z + 1) + x.maximum(y * 1.1), [a, b, c])


DOUBLE = {
    "mul_div": lambda a, b: a * b / (b * b + 1),
    "pow": lambda a, b: a.abs() ** b + 2.0 ** a,
    "maximum_where": lambda a, b: a.maximum(b) + (a * b).where(a > 0, b * 2),
    "clamp_masked_fill":
        lambda a, b: a.clamp(b - 1, b) + a.clamp(-0.5, 0.5) + (a * a).masked_fill(b > 0, 0.25),
    "lerp_addc": lambda a, b: a.lerp(b, 0.3) + a.addcmul(b, a, value=0.5) + a.addcdiv(a, b * b + 1),
    "remainder": lambda a, b: a.remainder(1.5) * a + a.fmod(b.detach()) * b,
}


@pytest.mark.parametrize("name", list(DOUBLE))
def test_double_backward_matches_torch(kernels, name):
    """create_graph=True: the gradient is itself differentiable (second order against torch's)."""
    fn = DOUBLE[name]
    rng = np.random.default_rng(5)
    arrays = [rng.uniform(-2, 2, (3, 4)), rng.uniform(-2, 2, (4,))]
    ours = [tinyml.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    w = torch.tensor(rng.standard_normal((3, 4)))
    g_ours = tinyml.autograd.grad((fn(*ours) ** 2 * tinyml.tensor(w.numpy())).sum(), ours, create_graph=True)
    g_theirs = torch.autograd.grad((fn(*theirs) ** 2 * w).sum(), theirs, create_graph=True)
    sum((g * g).sum() for g in g_ours).backward()
    sum((g * g).sum() for g in g_theirs).backward()
    for a, b in zip(ours, theirs):
        tinyml.testing.assert_close(a.grad, b.grad, msg=f"{name} second order:")


# -- every backend of the family ------------------------------------------------------------------
def _lib(x):
    return tinyml if isinstance(x, tinyml.Tensor) else torch


@pytest.mark.parametrize("shapes", [[(3, 5), (5,)], [(2, 1, 4), (3, 1)], [(), (4,)]])
def test_binary_broadcast_on_every_backend(backend_device, shapes):
    check_op(shapes, lambda a, b: (a + b) * (a - b) / (b * b + 1.0), device=backend_device)
    check_op(shapes, lambda a, b: a ** 2 + 2 ** b - b, device=backend_device, low=0.5, high=2.0)


def test_comparisons_on_every_backend(backend_device):
    """where and the comparisons no other test of this file reaches on every backend."""
    check_op([(3, 4), (4,)], lambda a, b: _lib(a).where((a < b) | (a <= b * 0.5) | (a >= b + 1), a.sin(),
                                                       b.cos()), device=backend_device)


def test_integer_division_family_on_every_backend(backend_device):
    a = np.array([-7, 7, -7, 7, 5, -6, 3, 0], np.int64)
    b = np.array([2, 2, -2, -2, 3, 4, -5, 7], np.int64)
    for name in ("floor_divide", "remainder", "fmod"):
        check_op(None, lambda p, q, name=name: getattr(_lib(p), name)(p, q), inputs=[a, b], dtype="int64",
                 device=backend_device)
    check_op(None, lambda p, q: _lib(p).div(p, q, rounding_mode="trunc"), inputs=[a, b], dtype="int64",
             device=backend_device)
    with pytest.raises(RuntimeError, match="division by zero"):
        tinyml.tensor(a, device=backend_device) // tinyml.tensor(b * 0, device=backend_device)


def test_float_division_family_on_every_backend(backend_device):
    check_op([(4, 5), (4, 5)], lambda p, q: _lib(p).remainder(p, q) + _lib(p).fmod(p, q),
             device=backend_device, grad=False, low=-3, high=3)
    check_op([(4, 5), (5,)], lambda p, q: p // q + _lib(p).div(p, q, rounding_mode="trunc"),
             device=backend_device, grad=False, low=0.3, high=3)


def test_logical_and_bitwise_on_every_backend(backend_device):
    a, b = np.array([0, 3, 5, -1], np.int64), np.array([1, 6, 0, -1], np.int64)
    check_op(None, lambda p, q: (p & q) | (p ^ q) | ~p, inputs=[a, b], dtype="int64", device=backend_device)
    check_op(None, lambda p, q: _lib(p).logical_xor(p, q) | _lib(p).logical_and(p, q)
             | _lib(p).logical_or(p, q) | _lib(p).logical_not(p), inputs=[a, b], dtype="int64",
             device=backend_device)
