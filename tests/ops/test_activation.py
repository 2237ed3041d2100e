"""Activations: forward and backward against torch.nn.functional, on reference and cpu kernels, and
on every backend of the family (backend_device: the numpy reference, the C++ kernels, the Triton
kernels); the C++ kernels also called directly against the reference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C, rand
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml import backends
from tinyml.testing import gradcheck

backend_device = backend_device_fixture()

# name, keyword arguments, input range
CASES = [
    ("gelu", {}, -4, 4), ("gelu", {"approximate": "tanh"}, -4, 4), ("silu", {}, -6, 6),
    ("softplus", {}, -5, 5), ("softplus", {"beta": 2.0, "threshold": 3.0}, -3, 3),
    ("leaky_relu", {}, -2, 2), ("leaky_relu", {"negative_slope": 0.2}, -2, 2),
    ("elu", {}, -3, 3), ("elu", {"alpha": 0.5}, -3, 3), ("relu6", {}, -3, 9),
    ("hardtanh", {}, -2, 2), ("hardtanh", {"min_val": -0.5, "max_val": 1.5}, -2, 2),
    ("mish", {}, -5, 5), ("logsigmoid", {}, -30, 30), ("glu", {}, -3, 3), ("glu", {"dim": 0}, -3, 3),
    ("relu", {}, -2, 2), ("tanh", {}, -3, 3), ("sigmoid", {}, -6, 6),
]
IDS = [f"{c[0]}-{'-'.join(f'{k}={v}' for k, v in c[1].items())}" for c in CASES]


def _pair(name, kwargs):
    return (lambda x: getattr(F, name)(x, **kwargs)), (lambda x: getattr(TF, name)(x, **kwargs))


@pytest.mark.parametrize("name,kwargs,low,high", CASES, ids=IDS)
def test_matches_torch(kernels, name, kwargs, low, high):
    ours, theirs = _pair(name, kwargs)
    check_op([(4, 6)], ours, theirs, low=low, high=high)
    check_op([(2, 4, 6)], ours, theirs, low=low, high=high, noncontiguous=True)
    if name != "glu":
        check_op([()], ours, theirs, low=low, high=high)
    check_op([(2, 6)], ours, theirs, low=low, high=high, dtype="float64")


@pytest.mark.parametrize("name", ["gelu", "silu", "softplus", "mish", "logsigmoid", "elu"])
def test_large_magnitudes_stay_finite(kernels, name):
    x = np.array([-1e4, -80.0, -20.0, 0.0, 20.0, 80.0, 1e4], dtype=np.float32)
    check_op([x.shape], lambda t: getattr(F, name)(t), lambda t: getattr(TF, name)(t), inputs=[x])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision(kernels, dtype):
    for name in ("gelu", "silu", "softplus", "mish"):
        ours, theirs = _pair(name, {})
        check_op([(3, 5)], ours, theirs, dtype=dtype, low=-3, high=3)


def test_hardtanh_gradient_is_zero_at_bounds(kernels):
    x = np.array([-1.0, -0.5, 1.0, 2.0, 0.0], dtype=np.float32)
    check_op([x.shape], lambda t: F.hardtanh(t), lambda t: TF.hardtanh(t), inputs=[x])
    check_op([x.shape], lambda t: F.relu6(t * 6), lambda t: TF.relu6(t * 6), inputs=[x])


@pytest.mark.parametrize("shapes", [[(3, 5), (3, 5)], [(2, 3, 4), (4,)], [(3, 1), (1, 6)], [(), ()]])
def test_swiglu_matches_silu_times_gate(kernels, shapes):
    check_op(shapes, lambda a, b: F.swiglu(a, b), lambda a, b: TF.silu(a) * b, low=-4, high=4)


def test_swiglu_saves_only_its_inputs():
    a, b = tinyml.randn(3, 4, requires_grad=True), tinyml.randn(3, 4, requires_grad=True)
    y = F.swiglu(a, b)
    saved = [e[0] for e in y.grad_fn._saved]
    assert len(saved) == 2 and saved[0] is a and saved[1] is b


def test_gradcheck_float64():
    rng = np.random.default_rng(1)
    for fn in (lambda t: F.gelu(t), lambda t: F.gelu(t, approximate="tanh"), lambda t: F.mish(t),
               lambda t: F.softplus(t, beta=1.5), lambda t: F.elu(t, 0.7), lambda t: F.glu(t, 1),
               lambda t: F.logsigmoid(t)):
        x = tinyml.tensor(rng.uniform(-2, 2, (3, 4)), requires_grad=True)
        assert gradcheck(fn, [x])
    a = tinyml.tensor(rng.uniform(-2, 2, (3, 4)), requires_grad=True)
    b = tinyml.tensor(rng.uniform(-2, 2, (3, 4)), requires_grad=True)
    assert gradcheck(lambda p, q: F.swiglu(p, q), [a, b])


def test_inplace_variants_write_into_input():
    for name, kwargs in (("leaky_relu", {"negative_slope": 0.1}), ("elu", {}), ("silu", {}), ("relu6", {}),
                         ("hardtanh", {}), ("mish", {}), ("relu", {})):
        x = tinyml.tensor([[-1.5, 0.5, 7.0]])
        expect = getattr(TF, name)(torch.tensor([[-1.5, 0.5, 7.0]]), **kwargs)
        out = getattr(F, name)(x, inplace=True, **kwargs)
        assert out is x
        np.testing.assert_allclose(x.numpy(), expect.numpy(), rtol=1e-6)


def test_inplace_keeps_gradient_flow():
    w = tinyml.tensor([[-1.0, 2.0]], requires_grad=True)
    h = w * 3
    F.leaky_relu(h, 0.1, inplace=True)
    h.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [[0.3, 3.0]], rtol=1e-6)


def test_errors_name_the_problem():
    with pytest.raises(RuntimeError, match="approximate.*none or tanh.*'fast'"):
        F.gelu(tinyml.randn(3), approximate="fast")
    with pytest.raises(RuntimeError, match="Halving dimension must be even.*size 3.*\\(2, 3\\)"):
        F.glu(tinyml.randn(2, 3))
    with pytest.raises(RuntimeError, match="floating point.*int64"):
        F.silu(tinyml.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="not broadcastable"):
        F.swiglu(tinyml.randn(2, 3), tinyml.randn(4, 3))
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(tinyml.randn(3), 1.0, -1.0)


# -- every backend of the family ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gelu", "silu", "softplus", "mish", "logsigmoid", "elu", "leaky_relu"])
def test_activations_on_every_backend(backend_device, name):
    check_op([(3, 10)], lambda x: getattr(F, name)(x), lambda x: getattr(TF, name)(x), device=backend_device,
             kind="reduction", noncontiguous=True)


def test_gelu_tanh_and_swiglu(backend_device):
    check_op([(3, 10)], lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"),
             device=backend_device, kind="reduction")
    check_op([(3, 10), (3, 10)], lambda a, b: F.swiglu(a, b), lambda a, b: TF.silu(a) * b,
             device=backend_device, kind="reduction")


def test_glu_and_hardtanh_on_every_backend(backend_device):
    def fn(x):
        return tinyml.nn.functional if isinstance(x, tinyml.Tensor) else torch.nn.functional

    check_op([(3, 4, 6)], lambda x: fn(x).glu(x, -1), device=backend_device)
    check_op([(4, 3)], lambda x: fn(x).glu(x, 0), device=backend_device, noncontiguous=True)
    check_op([(3, 4)], lambda x: fn(x).hardtanh(x, -0.5, 0.7), device=backend_device)


# -- the C++ kernels (csrc/activation.cpp) called directly, against the reference ------------------
@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (5, 3), (1027,), (7, 9, 611)])
def test_cpu_activation_kernels(dtype, shape):
    """float32 and float64, sizes that are no multiple of a vector width, and large enough to take
    the multi-threaded path; each function directly and through the cpu adapter."""
    rng = np.random.default_rng(0)
    x, b, dy = rand(rng, shape, dtype, 4.0), rand(rng, shape, dtype), rand(rng, shape, dtype)
    x.flat[0] = -30.0  # far tails: sigmoid / erfc underflow must give 0, not NaN
    if x.size > 1:
        x.flat[1] = 30.0
    for approx in ("none", "tanh"):
        ref = impls("gelu_forward")[1](x, approx)
        close(_C.gelu_forward(x, approx), ref, dtype, f"gelu {approx}")
        close(impls("gelu_forward")[0](x, approx), ref, dtype, f"gelu {approx} adapter")
        close(_C.gelu_backward(x, dy, approx), impls("gelu_backward")[1](x, dy, approx), dtype,
              f"gelu' {approx}")
    close(_C.silu_forward(x), impls("silu_forward")[1](x), dtype, "silu")
    close(_C.silu_backward(x, dy), impls("silu_backward")[1](x, dy), dtype, "silu'")
    close(_C.swiglu_forward(x, b), impls("swiglu_forward")[1](x, b), dtype, "swiglu")
    close(_C.swiglu_backward(x, b, dy), impls("swiglu_backward")[1](x, b, dy), dtype, "swiglu'")
    close(_C.softplus_forward(x, 2.0, 5.0), impls("softplus_forward")[1](x, 2.0, 5.0), dtype, "softplus")
    close(_C.softplus_backward(x, dy, 2.0, 5.0), impls("softplus_backward")[1](x, dy, 2.0, 5.0), dtype,
          "softplus'")


@needs_C
def test_cpu_activation_adapter_noncontiguous_and_fallback():
    rng = np.random.default_rng(1)
    x = rand(rng, (33, 20), np.float32).T  # transposed view
    dy = rand(rng, (20, 33), np.float32)
    cpu, ref = impls("silu_backward")
    close(cpu(x, dy), ref(np.ascontiguousarray(x), dy), np.float32, "noncontiguous")
    h = x.astype(np.float16)  # no float16 in C++: the adapter declines, and dispatch runs the reference
    assert impls("silu_forward")[0](h) is NotImplemented
    np.testing.assert_array_equal(backends.dispatch("silu_forward")(h), impls("silu_forward")[1](h))


@needs_C
def test_cpu_activation_binding_errors():
    f32 = np.ones((4, 8), np.float32)
    with pytest.raises(TypeError, match="int32"):
        _C.gelu_forward(f32.astype(np.int32), "none")
    with pytest.raises(ValueError, match="approximate"):
        _C.gelu_forward(f32, "fast")
    with pytest.raises(ValueError, match=r"\(4, 8\).*\(4, 7\)"):
        _C.silu_backward(f32, np.ones((4, 7), np.float32))
    with pytest.raises(TypeError, match="float64"):
        _C.swiglu_forward(f32, f32.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.silu_forward(np.ones((8, 4), np.float32).T)
