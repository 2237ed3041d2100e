"""C++ embedding scatter-add and optimizer steps (csrc/embedding.cpp, optim.cpp) against the numpy
reference: repeated ids under threads, padding_idx, Adam/AdamW/AMSGrad and SGD (momentum,
nesterov, dampening, maximize, first-step buffers) over lists of tensors of odd sizes, several
steps in a row; tensors the C++ code cannot update in place fall back to the reference."""
import numpy as np
import pytest
from cpu_kernel_utils import _C, DTYPES, close, impls, needs_C, rand

pytestmark = needs_C


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,v,d,pad", [(1, 1, 1, -1), (7, 3, 5, -1), (64, 10, 700, 2), (4000, 50, 33, 0)])
def test_embedding_backward(dtype, n, v, d, pad):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, v, (n // 4 + 1, 4) if n > 4 else (n,))  # many repeats of each id
    dy = rand(rng, ids.shape + (d,), dtype)
    ref = impls("embedding_backward")[1](ids, dy, v, pad)
    close(_C.embedding_backward(ids, dy, v, pad), ref, dtype, "embedding_backward")
    close(impls("embedding_backward")[0](ids.astype(np.int32), dy, v, pad), ref, dtype, "adapter")
    one = np.asarray(ids.flat[0])  # a 0-d id: dy is (D,)
    close(impls("embedding_backward")[0](one, dy.reshape(-1, d)[0], v, pad),
          impls("embedding_backward")[1](one, dy.reshape(-1, d)[0], v, pad), dtype, "0-d id")


def test_embedding_validation():
    dy = np.ones((3, 4), np.float32)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        _C.embedding_backward(np.array([0, 5, 1]), dy, 5, -1)
    with pytest.raises(IndexError, match="index -1"):
        _C.embedding_backward(np.array([0, -1, 1]), dy, 5, -1)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2,\)"):
        _C.embedding_backward(np.array([0, 1]), dy, 5, -1)
    with pytest.raises(TypeError, match="int64"):
        _C.embedding_backward(np.array([0, 1, 2], np.int32), dy, 5, -1)


SIZES = [(), (1,), (7, 3), (1000, 67), (65537,)]  # 0-d; the last one spans two 64K chunks


def _state(dtype, seed=0, n=5):
    rng = np.random.default_rng(seed)
    return [rand(rng, s, dtype) for s in SIZES[:n]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decoupled,wd,amsgrad", [(True, 0.1, False), (False, 0.01, False), (False, 0.0, True)])
def test_adam_step(dtype, decoupled, wd, amsgrad):
    name = "adam_amsgrad_step" if amsgrad else "adam_step"
    cpu, ref = impls(name)
    ps_c, ps_r = _state(dtype, 1), _state(dtype, 1)
    ms_c, ms_r = [np.zeros_like(p) for p in ps_c], [np.zeros_like(p) for p in ps_c]
    vs_c, vs_r = [np.zeros_like(p) for p in ps_c], [np.zeros_like(p) for p in ps_c]
    extra_c = [[np.zeros_like(p) for p in ps_c]] if amsgrad else []
    extra_r = [[np.zeros_like(p) for p in ps_c]] if amsgrad else []
    for step in (1, 2, 3):
        gs = _state(dtype, 10 + step)
        assert cpu(ps_c, gs, ms_c, vs_c, *extra_c, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled) is None
        ref(ps_r, gs, ms_r, vs_r, *extra_r, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled)
    close(ps_c, ps_r, dtype, "params")
    close(ms_c, ms_r, dtype, "exp_avgs")
    close(vs_c, vs_r, dtype, "exp_avg_sqs")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,dampening,nesterov,maximize,wd",
                         [(0.0, 0.0, False, False, 0.0), (0.9, 0.0, True, False, 1e-2), (0.9, 0.3, False, True, 0.0)])
def test_sgd_step(dtype, momentum, dampening, nesterov, maximize, wd):
    cpu, ref = impls("sgd_step")
    ps_c, ps_r = _state(dtype, 2), _state(dtype, 2)
    bufs_c, bufs_r = [None] * len(ps_c), [None] * len(ps_r)
    for step in range(3):
        gs = _state(dtype, 20 + step)
        bufs_c = cpu(ps_c, gs, bufs_c, 0.1, momentum, dampening, wd, nesterov, maximize)
        bufs_r = ref(ps_r, gs, bufs_r, 0.1, momentum, dampening, wd, nesterov, maximize)
    close(ps_c, ps_r, dtype, "params")
    close(bufs_c, bufs_r, dtype, "buffers")


def test_optim_in_place_fallback_for_noncontiguous_and_float16():
    # a transposed parameter and a float16 one cannot be updated in place by the C++ code:
    # the adapter must hand them to the reference, never update a copy
    rng = np.random.default_rng(3)
    ps = [rand(rng, (5, 4), np.float32).T, rand(rng, (6,), np.float16), rand(rng, (9,), np.float32)]
    ref_ps = [p.copy() for p in ps]
    gs = [rand(rng, p.shape, p.dtype) for p in ps]
    state = lambda: [[np.zeros_like(p) for p in ps] for _ in range(2)]
    impls("adam_step")[0](ps, gs, *state(), 1e-2, 0.9, 0.99, 1e-8, 0.0, 1, True)
    impls("adam_step")[1](ref_ps, gs, *state(), 1e-2, 0.9, 0.99, 1e-8, 0.0, 1, True)
    for a, b in zip(ps, ref_ps):
        close(a, b, a.dtype, "param")


def test_optim_validation():
    p = [np.ones(4, np.float32)]
    with pytest.raises(ValueError, match=r"params\[0\] has shape \(4,\) but grads\[0\] has shape \(3,\)"):
        _C.adam_step(p, [np.ones(3, np.float32)], p, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, True)
    with pytest.raises(TypeError, match="float64"):
        _C.adam_step(p, [np.ones(4)], p, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, True)
    with pytest.raises(ValueError, match="1 params but 2 exp_avgs"):
        _C.adam_step(p, p, p * 2, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, True)
    with pytest.raises(ValueError, match="step must be >= 1"):
        _C.adam_step(p, p, p, p, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0, True)
    ro = np.ones(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.sgd_step([ro], p, [None], 0.1, 0.0, 0.0, 0.0, False, False)
    assert _C.sgd_step([], [], [], 0.1, 0.9, 0.0, 0.0, False, False) == []
