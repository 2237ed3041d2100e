"""Losses: forward and backward against torch.nn.functional, every reduction and option, on reference
and cpu kernels, and on every backend of the family (backend_device: the numpy reference, the C++
kernels, the Triton kernels); the C++ cross_entropy also called directly against the reference."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C, rand
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import gradcheck

RED = {"kind": "reduction"}
REDUCTIONS = ["mean", "sum", "none"]
backend_device = backend_device_fixture()


def _targets(shape, n_classes, ignore=(), seed=3):
    t = np.random.default_rng(seed).integers(0, n_classes, size=shape)
    for idx in ignore:
        t[idx] = -100
    return t


def _ce(t, **kw):
    """(ours, torch's) cross_entropy with target array t and keyword arrays turned into tensors."""
    ours = {k: tinyml.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    theirs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    return (lambda x: F.cross_entropy(x, tinyml.tensor(t), **ours),
            lambda x: TF.cross_entropy(x, torch.tensor(t), **theirs))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy_class_indices(kernels, reduction, label_smoothing):
    t = _targets((7,), 5, ignore=[2])
    check_op([(7, 5)], *_ce(t, reduction=reduction, label_smoothing=label_smoothing), **RED)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_spatial_targets_move_classes_last(kernels, reduction):
    t = _targets((2, 3, 4), 5, ignore=[(0, 1, 2)])
    check_op([(2, 5, 3, 4)], *_ce(t, reduction=reduction, label_smoothing=0.1), **RED)


def test_cross_entropy_unbatched_and_custom_ignore_index(kernels):
    check_op([(6,)], *_ce(np.array(4)), **RED)
    t = _targets((6,), 4)
    t[[0, 3]] = 2
    check_op([(6, 4)], *_ce(t, ignore_index=2), **RED)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_class_weights(kernels, reduction, label_smoothing):
    w = np.random.default_rng(0).uniform(0.2, 2, 5).astype(np.float32)
    t = _targets((8,), 5, ignore=[1, 5])
    check_op([(8, 5)], *_ce(t, weight=w, reduction=reduction, label_smoothing=label_smoothing), **RED)
    ts = _targets((2, 3), 5, ignore=[(1, 1)])
    check_op([(2, 5, 3)], *_ce(ts, weight=w, reduction=reduction, label_smoothing=label_smoothing), **RED)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probability_targets(kernels, reduction):
    p = np.random.default_rng(1).dirichlet(np.ones(4), size=(3, 2))
    p = p.transpose(0, 2, 1).astype(np.float32)  # (3, 4, 2)
    w = np.array([0.5, 1.0, 2.0, 1.5], dtype=np.float32)
    for kw in ({}, {"label_smoothing": 0.2}, {"weight": w}):
        check_op([(3, 4, 2)], *_ce(p, reduction=reduction, **kw), **RED)


def test_cross_entropy_float64_noncontiguous_and_half(kernels):
    t = _targets((6,), 4, ignore=[0])
    check_op([(6, 4)], *_ce(t, label_smoothing=0.1), dtype="float64", **RED)
    check_op([(6, 4)], *_ce(t), noncontiguous=True, **RED)
    check_op([(6, 4)], *_ce(t), dtype="bfloat16", **RED)


def test_cross_entropy_saves_only_logits_and_row_statistics():
    x = tinyml.randn(6, 10, requires_grad=True)
    loss = F.cross_entropy(x.reshape(6, 10), tinyml.tensor(_targets((6,), 10)), reduction="none")
    saved = [tuple(e[0].shape) for e in loss.grad_fn._saved if e is not None]
    # logits, target and the row max and log-sum (kept apart for precision): no softmax matrix
    assert sorted(saved) == sorted([(6, 10), (6,), (6,), (6,)])


def test_cross_entropy_all_ignored_mean_is_nan_like_torch():
    x = tinyml.randn(3, 4)
    t = tinyml.tensor([-100, -100, -100])
    assert np.isnan(F.cross_entropy(x, t).item())
    assert F.cross_entropy(x, t, reduction="sum").item() == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(kernels, reduction):
    w = np.random.default_rng(0).uniform(0.2, 2, 4).astype(np.float32)
    t = _targets((2, 3), 4, ignore=[(0, 0)])
    for kw in ({}, {"weight": w}):
        ours = {k: tinyml.tensor(v) for k, v in kw.items()}
        theirs = {k: torch.tensor(v) for k, v in kw.items()}
        check_op([(2, 4, 3)],
                 lambda x, kw=ours: F.nll_loss(x.log_softmax(1), tinyml.tensor(t), reduction=reduction, **kw),
                 lambda x, kw=theirs: TF.nll_loss(x.log_softmax(1), torch.tensor(t), reduction=reduction,
                                                  **kw),
                 **RED)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kw", [("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {}),
                                     ("smooth_l1_loss", {"beta": 0.5}), ("smooth_l1_loss", {"beta": 0.0}),
                                     ("huber_loss", {}), ("huber_loss", {"delta": 0.4})])
def test_regression_losses(kernels, reduction, name, kw):
    check_op([(4, 5), (4, 5)], lambda a, b: getattr(F, name)(a, b, reduction=reduction, **kw),
             lambda a, b: getattr(TF, name)(a, b, reduction=reduction, **kw), **RED)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_with_weight(kernels, name, reduction):
    check_op([(3, 4), (3, 4), (3, 4)], lambda a, b, w: getattr(F, name)(a, b, reduction=reduction, weight=w),
             lambda a, b, w: getattr(TF, name)(a, b, reduction=reduction, weight=w), low=0.1, **RED)


def test_regression_broadcast_warns_like_torch(kernels):
    with pytest.warns(UserWarning, match="target size"):
        check_op([(3, 4), (4,)], lambda a, b: F.mse_loss(a, b), lambda a, b: TF.mse_loss(a, b), **RED)
    check_op([(4, 5), (4, 5)], lambda a, b: F.l1_loss(a, b), lambda a, b: TF.l1_loss(a, b),
             noncontiguous=True, **RED)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(kernels, reduction):
    rng = np.random.default_rng(2)
    x = rng.uniform(-30, 30, (4, 3))
    y = rng.uniform(0, 1, (4, 3))
    w, pw = rng.uniform(0.5, 2, (3,)), rng.uniform(0.5, 3, (3,))
    # weight and pos_weight are not differentiable in PyTorch: constants here (gradcheck covers
    # tinyml's pos_weight gradient)
    def f(mod, lib):
        return lambda x, y: mod.binary_cross_entropy_with_logits(
            x, y, weight=lib.tensor(w, dtype=x.dtype), pos_weight=lib.tensor(pw, dtype=x.dtype),
            reduction=reduction)

    def g(mod):
        return lambda x, y: mod.binary_cross_entropy_with_logits(x, y, reduction=reduction)

    check_op(None, f(F, tinyml), f(TF, torch), inputs=[x, y], **RED)
    check_op(None, g(F), g(TF), inputs=[x, y], **RED)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(kernels, reduction):
    rng = np.random.default_rng(4)
    x, y, w = rng.uniform(0.02, 0.98, (3, 5)), rng.uniform(0, 1, (3, 5)), rng.uniform(0.5, 2, (5,))
    def f(mod, lib):
        return lambda x, y: mod.binary_cross_entropy(x, y, lib.tensor(w, dtype=x.dtype), reduction=reduction)

    check_op(None, f(F, tinyml), f(TF, torch), inputs=[x, y], **RED)
    # saturated probabilities: logs are clamped at -100, never inf
    x0 = np.array([0.0, 1.0, 0.5])
    check_op(None, lambda a: F.binary_cross_entropy(a, tinyml.tensor([1.0, 0.0, 1.0])),
             lambda a: TF.binary_cross_entropy(a, torch.tensor([1.0, 0.0, 1.0])), inputs=[x0], grad=False)


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(kernels, reduction, log_target):
    rng = np.random.default_rng(5)
    x = np.log(rng.dirichlet(np.ones(5), size=3))
    t = rng.dirichlet(np.ones(5), size=3)
    t = np.log(t) if log_target else t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_op(None, lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                 lambda a, b: TF.kl_div(a, b, reduction=reduction, log_target=log_target), inputs=[x, t],
                 **RED)


@pytest.mark.parametrize("shapes,dim", [([(4, 6), (4, 6)], 1), ([(2, 3, 5), (1, 3, 5)], -1),
                                        ([(5,), (5,)], 0)])
def test_cosine_similarity(kernels, shapes, dim):
    check_op(shapes, lambda a, b: F.cosine_similarity(a, b, dim),
             lambda a, b: TF.cosine_similarity(a, b, dim),
             **RED)


def test_cosine_similarity_zero_vector_is_finite(kernels):
    a = np.zeros((2, 3))
    a[1] = [1.0, 2.0, 2.0]
    b = np.ones((2, 3))
    check_op(None, lambda x, y: F.cosine_similarity(x, y), lambda x, y: TF.cosine_similarity(x, y),
             inputs=[a, b], **RED)


def test_legacy_size_average_and_reduce_flags():
    x, y = tinyml.randn(3, 4), tinyml.randn(3, 4)
    tx, ty = torch.tensor(x.numpy()), torch.tensor(y.numpy())
    for sa, rd in ((False, None), (None, False), (True, True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = TF.mse_loss(tx, ty, size_average=sa, reduce=rd)
        got = F.mse_loss(x, y, size_average=sa, reduce=rd)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)


def test_gradcheck_float64():
    rng = np.random.default_rng(7)
    x = tinyml.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    t = tinyml.tensor(np.array([0, 2, -100, 1]))
    assert gradcheck(lambda x: F.cross_entropy(x, t, label_smoothing=0.2), [x])
    w = tinyml.tensor(rng.uniform(0.5, 2, 3))
    assert gradcheck(lambda x: F.cross_entropy(x, t, weight=w, label_smoothing=0.1), [x])
    y = tinyml.tensor(rng.uniform(0, 1, (4, 3)), requires_grad=True)
    pw = tinyml.tensor(rng.uniform(0.5, 2, (3,)), requires_grad=True)
    assert gradcheck(lambda x, y, pw: F.binary_cross_entropy_with_logits(x, y, pos_weight=pw), [x, y, pw])
    assert gradcheck(lambda x, y: F.huber_loss(x, y, delta=0.5), [x, y])
    assert gradcheck(lambda x, y: F.cosine_similarity(x, y), [x, y])


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_errors_name_shapes_and_values():
    x = tinyml.randn(3, 5)
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target batch_size \(4\)"):
        F.cross_entropy(x, tinyml.tensor([0, 1, 2, 3]))
    with pytest.raises(RuntimeError, match=r"expected target of shape \(2, 4\) for input of shape \(2, 5, "
                                           r"4\), got target of shape \(2, 3\)"):
        F.cross_entropy(tinyml.randn(2, 5, 4), tinyml.zeros(2, 3, dtype=tinyml.int64))
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.cross_entropy(x, tinyml.tensor([0, 7, 1]))
    with pytest.raises(RuntimeError, match=r"weight tensor should be defined either for all 5 "
                                           r"classes.*\[4\]"):
        F.cross_entropy(x, tinyml.tensor([0, 1, 2]), weight=tinyml.ones(4))
    with pytest.raises(RuntimeError, match=r"probability targets.*\(3, 5\).*\(3, 4\)"):
        F.cross_entropy(x, tinyml.rand(3, 4))
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0. Got: 1.5"):
        F.cross_entropy(x, tinyml.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"Target size \(\(3, 1\)\) must be the same as input size \(\(3, "
                                         r"5\)\)"):
        F.binary_cross_entropy_with_logits(x, tinyml.rand(3, 1))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(x * 0 + 1.5, tinyml.rand(3, 5))
    with pytest.raises(RuntimeError, match="not broadcastable"):
        F.mse_loss(x, tinyml.randn(4, 5))
    with pytest.raises(ValueError, match=r"Weights and input must have the same size \(weight \(5,\), input "
                                         r"\(3, 5\)\)"):
        F.l1_loss(x, x, weight=tinyml.ones(5))


# -- every backend of the family ------------------------------------------------------------------
def _F(x):
    return tinyml.nn.functional if isinstance(x, tinyml.Tensor) else torch.nn.functional


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_on_every_backend(backend_device, smoothing):
    t = np.array([1, 4, -100, 0])
    check_op([(4, 10)],
             lambda x: F.cross_entropy(x, tinyml.tensor(t, device=backend_device), label_smoothing=smoothing),
             lambda x: TF.cross_entropy(x, torch.tensor(t), label_smoothing=smoothing), device=backend_device,
             **RED)


def test_cross_entropy_bad_target_raises_on_every_backend(backend_device):
    # csrc/loss.cpp words the rest of the message its own way (the class range, ignore_index)
    with pytest.raises(IndexError, match="Target 5 is out of bounds"):
        F.cross_entropy(tinyml.randn(2, 3, device=backend_device),
                        tinyml.tensor([0, 5], device=backend_device))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_regression_losses_on_every_backend(backend_device, reduction):
    check_op([(3, 5), (3, 5)], lambda x, y: _F(x).l1_loss(x, y, reduction=reduction), device=backend_device)
    check_op([(3, 5), (3, 5)], lambda x, y: _F(x).smooth_l1_loss(x, y, reduction=reduction, beta=0.7),
             device=backend_device)
    check_op([(3, 5), (3, 5)], lambda x, y: _F(x).huber_loss(x, y, reduction=reduction, delta=0.6),
             device=backend_device, noncontiguous=True)


def test_binary_cross_entropies_on_every_backend(backend_device):
    check_op([(3, 5), (3, 5)], lambda x, y: _F(x).binary_cross_entropy_with_logits(x, y.sigmoid()),
             device=backend_device)
    check_op([(3, 5), (3, 5), (5,)], lambda x, y, w: _F(x).binary_cross_entropy_with_logits(
        x, y.sigmoid(), pos_weight=w.exp().detach(), reduction="sum"), device=backend_device)
    check_op([(3, 5), (3, 5)], lambda x, y: _F(x).binary_cross_entropy(x.sigmoid(), y.sigmoid()),
             device=backend_device)
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(tinyml.tensor([0.5, 1.5], device=backend_device),
                               tinyml.tensor([0.0, 1.0], device=backend_device))


def test_kl_div_on_every_backend(backend_device):
    check_op([(3, 5), (3, 5)],
             lambda x, y: _F(x).kl_div(x.log_softmax(-1), y.softmax(-1), reduction="batchmean"),
             device=backend_device)
    check_op([(3, 5), (3, 5)], lambda x, y: _F(x).kl_div(x, y, reduction="sum", log_target=True),
             device=backend_device)


def test_nll_loss_on_every_backend(backend_device):
    t = np.array([0, 3, -100, 4], np.int64)

    def fn(x, w):
        tt = (tinyml if isinstance(x, tinyml.Tensor) else torch).tensor(t, device=x.device)
        weighted = _F(x).nll_loss(x.log_softmax(1), tt, weight=w.exp().detach())
        return weighted + _F(x).nll_loss(x, tt, reduction="sum")

    check_op([(4, 5), (5,)], fn, device=backend_device)
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.nll_loss(tinyml.zeros(2, 5, device=backend_device), tinyml.tensor([1, 7], device=backend_device))


# -- the C++ cross_entropy (csrc/loss.cpp) called directly, against the reference -----------------
@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", [(1, 1), (1, 5), (7, 33), (13, 1031), (9, 5000)])
@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_cpu_cross_entropy_kernels(dtype, n, c, ls):
    rng = np.random.default_rng(5)
    x = rand(rng, (n, c), dtype, 3.0)
    t = rng.integers(0, c, n)
    if n > 2:
        t[1] = -100  # an ignored row
        x[2, :] = -np.inf  # a row the max can not be taken from... except the target
        x[2, t[2]] = 0.0
    cpu, ref = impls("cross_entropy_forward")
    fwd_ref = ref(x, t, -100, ls)  # (loss, row max, row log-sum); label smoothing makes row 2's loss inf
    close(_C.cross_entropy_forward(x, t, -100, ls), fwd_ref, dtype, "cross_entropy")
    close(cpu(x, t.astype(np.int32), -100, ls), fwd_ref, dtype, "adapter int32 targets")
    dloss = rand(rng, (n,), dtype)
    bref = impls("cross_entropy_backward")[1](x, t, *fwd_ref[1:], dloss, -100, ls)
    close(_C.cross_entropy_backward(x, t, *fwd_ref[1:], dloss, -100, ls), bref, dtype,
          "cross_entropy backward")


@needs_C
def test_cpu_cross_entropy_adapter_scalar_dloss():
    rng = np.random.default_rng(6)
    x, t = rand(rng, (4, 10), np.float32), rng.integers(0, 10, 4)
    stats = _C.cross_entropy_forward(x, t, -100, 0.0)[1:]
    g = np.float32(0.25)
    expected = impls("cross_entropy_backward")[1](x, t, *stats, np.full(4, g), -100, 0.0)
    got = impls("cross_entropy_backward")[0](x, t, *stats, np.asarray(g), -100, 0.0)
    close(got, expected, np.float32, "")


@needs_C
def test_cpu_cross_entropy_memory_is_one_logits_sized_output():
    # the fused backward writes dlogits directly: numpy-side peak allocation (tracemalloc sees
    # numpy's buffers) is the dlogits array itself, no softmax or one-hot temporaries
    import tracemalloc

    rng = np.random.default_rng(7)
    x, t = rand(rng, (64, 4099), np.float32), rng.integers(0, 4099, 64)
    cpu_f, cpu_b = impls("cross_entropy_forward")[0], impls("cross_entropy_backward")[0]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        _, row_max, log_sum = cpu_f(x, t, -100, 0.1)
        assert tracemalloc.get_traced_memory()[1] < 0.05 * x.nbytes
        dloss = np.ones(64, np.float32)
        tracemalloc.reset_peak()
        d = cpu_b(x, t, row_max, log_sum, dloss, -100, 0.1)
        assert tracemalloc.get_traced_memory()[1] <= 1.05 * x.nbytes
    finally:
        tracemalloc.stop()
    assert d.shape == x.shape


@needs_C
def test_cpu_cross_entropy_binding_errors():
    f32 = np.ones((4, 8), np.float32)
    z4, one4 = np.zeros(4, np.float32), np.ones(4, np.float32)
    with pytest.raises(IndexError, match="Target 8 is out of bounds"):
        _C.cross_entropy_forward(f32, np.array([0, 1, 8, 2]), -100, 0.0)
    with pytest.raises(IndexError, match="Target -1 is out of bounds"):
        _C.cross_entropy_backward(f32, np.array([0, 1, -1, 2]), z4, z4, one4, -100, 0.0)
    with pytest.raises(ValueError, match=r"log_sum \(3,\).*\(4, 8\)"):
        _C.cross_entropy_backward(f32, np.array([0, 1, 1, 2]), z4, np.zeros(3, np.float32), one4, -100, 0.0)
    with pytest.raises(ValueError, match=r"target has shape \(3,\)"):
        _C.cross_entropy_forward(f32, np.array([0, 1, 2]), -100, 0.0)
    with pytest.raises(TypeError, match="int64"):
        _C.cross_entropy_forward(f32, np.array([0, 1, 2, 3], np.int32), -100, 0.0)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        _C.cross_entropy_forward(np.ones(4, np.float32), np.array([0]), -100, 0.0)
