"""Fault tests of the fused optimizer steps (csrc/optim.cpp behind SGD, Adam, AdamW, AMSGrad) with
hypothesis: parameters of sizes 0 and 1, 0-d, sizes off the SIMD widths and across the kernel's
512-element blocks and 64K-element chunks, contiguous or not (a non-contiguous parameter is updated by
the numpy reference, in place), float32/float64/float16/bfloat16, hyperparameters at their edges
(lr 0, betas 0, eps 0, momentum with and without Nesterov, maximize), and gradients holding NaN, +inf
and -inf. Three steps on the numpy reference and on the C++ kernels against torch.optim (foreach off,
the single-tensor path: the same operation order), the parameters compared after every step.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_faults_helpers import SPOTS, inject, rounded, tensor_in

import tinyml
from tinyml.testing import assert_close

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SHAPES = st.sampled_from([(), (0,), (1,), (5,), (3, 17), (2, 513)])
KINDS = {"sgd": ("SGD", "SGD"), "adam": ("Adam", "Adam"), "adamw": ("AdamW", "AdamW")}


def _hyper(kind, draw):
    if kind == "sgd":
        momentum = draw(st.sampled_from([0.0, 0.9]))
        nesterov = momentum > 0 and draw(st.booleans())
        return dict(lr=draw(st.sampled_from([0.0, 1e-3, 0.1])), momentum=momentum, nesterov=nesterov,
                    dampening=0.0 if nesterov else draw(st.sampled_from([0.0, 0.5])),
                    weight_decay=draw(st.sampled_from([0.0, 0.01])), maximize=draw(st.booleans()))
    return dict(lr=draw(st.sampled_from([0.0, 1e-3, 0.1])),
                betas=draw(st.sampled_from([(0.9, 0.999), (0.0, 0.0), (0.5, 0.9)])),
                eps=draw(st.sampled_from([1e-8, 0.0, 1.0])), weight_decay=draw(st.sampled_from([0.0, 0.1])),
                amsgrad=draw(st.booleans()), maximize=draw(st.booleans()))


def _run(kind, hyper, shapes, dtype, layouts, grads, backend):
    """Parameters after each of len(grads) steps, tinyml's and torch's."""
    rng = np.random.default_rng(len(shapes))
    init = [rounded(rng.standard_normal(s), dtype) for s in shapes]
    th_dtype = getattr(torch, dtype)
    th = [torch.nn.Parameter(torch.tensor(a, dtype=th_dtype)) for a in init]
    opt_th = getattr(torch.optim, KINDS[kind][1])(th, foreach=False, **hyper)
    with tinyml.backends.force_reference(backend == "reference"):
        tm = [tensor_in(a, dtype, True, lay) for a, lay in zip(init, layouts)]
        opt_tm = getattr(tinyml.optim, KINDS[kind][0])(tm, **hyper)
        for step, gs in enumerate(grads):
            for a, b, g in zip(tm, th, gs):
                a.grad = tinyml.tensor(g, dtype=dtype)
                b.grad = torch.tensor(g, dtype=th_dtype)
            opt_tm.step()
            opt_th.step()
            for i, (a, b) in enumerate(zip(tm, th)):
                assert_close(a, b, dtype=dtype, msg=f"[{backend}] step {step + 1}, param {i}:")
    return [a.detach().numpy() for a in tm]


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(sorted(KINDS)), shapes=st.lists(SHAPES, min_size=1, max_size=3),
       dtype=st.sampled_from(["float32", "float64", "float32", "float16", "bfloat16"]),
       spots=st.lists(SPOTS, min_size=3, max_size=3), seed=st.integers(0, 2**16))
def test_optimizer_steps(data, kind, shapes, dtype, spots, seed):
    hyper = _hyper(kind, data.draw)
    layouts = [data.draw(st.sampled_from(["contiguous", "contiguous", "transposed", "sliced"]))
               for _ in shapes]
    rng = np.random.default_rng(seed)
    grads = [[rounded(inject(rng.standard_normal(s), spots[step] if i == 0 else []), dtype)
              for i, s in enumerate(shapes)] for step in range(3)]
    ref = _run(kind, hyper, shapes, dtype, layouts, grads, "reference")
    cpu = _run(kind, hyper, shapes, dtype, layouts, grads, "cpu")
    for i, (a, e) in enumerate(zip(cpu, ref)):
        assert_close(a, e, dtype=dtype, msg=f"cpu vs reference, param {i}:")


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("amsgrad", [False, True])
def test_optimizer_chunks_and_blocks(kind, amsgrad):
    """A parameter longer than one 64K chunk, NaN/inf at block and chunk edges, a second parameter that
    is not; float32 on both backends."""
    if kind == "sgd":
        hyper = dict(lr=0.1, momentum=0.9, nesterov=not amsgrad, dampening=0.0, weight_decay=0.01)
    else:
        hyper = dict(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, amsgrad=amsgrad)
    shapes = [((1 << 16) + 515,), (7,)]
    rng = np.random.default_rng(1)
    grads = []
    for step in range(3):
        g = rng.standard_normal(shapes[0])
        g[[511, 512, 65535, 65536, 65537 + step]] = [math.nan, math.inf, -math.inf, math.inf, math.nan]
        grads.append([g, rng.standard_normal(shapes[1])])
    for backend in ("reference", "cpu"):
        _run(kind, hyper, shapes, "float32", ["contiguous", "contiguous"], grads, backend)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_amsgrad_keeps_a_nan_maximum(dtype):
    """max(vmax, v) propagates NaN from either side, as torch.maximum does: a NaN running maximum (a
    checkpoint can hold one) keeps the parameter NaN even when the new v is finite."""
    results = []
    for backend in ("reference", "cpu"):
        p, g = np.ones(20, dtype), np.full(20, 0.5, dtype)
        m, v, vmax = np.zeros(20, dtype), np.zeros(20, dtype), np.zeros(20, dtype)
        vmax[[0, 17]] = math.nan
        with tinyml.backends.force_reference(backend == "reference"):
            step = tinyml.backends.dispatch("adam_amsgrad_step", "cpu")
            step([p], [g], [m], [v], [vmax], 0.1, 0.9, 0.999, 1e-8, 0.0, 1, False)
        assert np.isnan(p[[0, 17]]).all() and np.isnan(vmax[[0, 17]]).all(), backend
        assert np.isfinite(np.delete(p, [0, 17])).all(), backend
        results.append(p)
    assert_close(results[1], results[0], dtype=dtype)


@pytest.mark.parametrize("make, names", [
    (lambda p: tinyml.optim.Adam([p], lr=-1.0), ["-1.0"]),
    (lambda p: tinyml.optim.Adam([p], betas=(1.0, 0.9)), ["1.0"]),
    (lambda p: tinyml.optim.Adam([p], eps=-1e-8), ["-1e-08"]),
    (lambda p: tinyml.optim.AdamW([p], weight_decay=-0.1), ["-0.1"]),
    (lambda p: tinyml.optim.Adam([p], lr=math.nan), ["nan"]),
    (lambda p: tinyml.optim.SGD([p], lr=0.1, momentum=-0.5), ["-0.5"]),
    (lambda p: tinyml.optim.SGD([p], lr=0.1, nesterov=True), ["Nesterov"]),
])
def test_bad_hyperparameters_are_refused(make, names):
    p = tinyml.zeros(3, requires_grad=True)
    with pytest.raises(ValueError) as info:
        make(p)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize("grad", ["shape", "dtype"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mismatched_gradient_is_refused(kind, grad):
    """Refused where the gradient is assigned (as PyTorch does) or at the step, before any write."""
    p = tinyml.zeros(3, requires_grad=True)
    opt = getattr(tinyml.optim, KINDS[kind][0])([p], lr=0.1)
    with pytest.raises(RuntimeError, match=r"(\(4,\).*\(3,\))|(\(3,\).*\(4,\))|float64"):
        p.grad = tinyml.zeros(4) if grad == "shape" else tinyml.zeros(3, dtype="float64")
        opt.step()
    assert p.detach().numpy().tolist() == [0.0, 0.0, 0.0]
