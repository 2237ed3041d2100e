"""embedding (ops/embedding.py) against PyTorch, forward and backward, on every backend of the
family: the numpy reference, the C++ kernels (cpu) and the Triton kernels (cuda: a GPU, or
Triton's interpreter); the kernels called through run(), and the C++ ones directly."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import _C, DTYPES, close, impls, needs_C, rand
from family_devices import backend_device_fixture
from helpers import check_op

import tinyml
import tinyml.nn.functional as F

IDS = np.array([[0, 4, 4], [1, 0, 2]])
backend_device = backend_device_fixture()


def _ids(w, ids=IDS):
    return tinyml.tensor(ids, device=w.device) if isinstance(w, tinyml.Tensor) else torch.tensor(ids)


@pytest.mark.parametrize("padding_idx", [None, 0, 2, -1])
def test_embedding_forward_backward(backend_device, padding_idx):
    check_op([(5, 3)], lambda w: F.embedding(_ids(w), w, padding_idx=padding_idx),
             lambda w: TF.embedding(_ids(w), w, padding_idx=padding_idx), device=backend_device)


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_embedding_dtypes(backend_device, dtype):
    check_op([(5, 3)], lambda w: F.embedding(_ids(w), w), lambda w: TF.embedding(_ids(w), w),
             device=backend_device, dtype=dtype)


def test_embedding_int32_ids_and_empty(backend_device):
    w = tinyml.randn(5, 3, device=backend_device)
    ids = tinyml.tensor(IDS.astype(np.int32), device=backend_device)
    np.testing.assert_array_equal(F.embedding(ids, w).cpu().numpy(), w.cpu().numpy()[IDS])
    assert F.embedding(tinyml.tensor(np.zeros((0, 2), np.int64), device=backend_device), w).shape == (0, 2, 3)


@pytest.mark.parametrize("bad", [5, -1])
def test_embedding_out_of_range_ids_raise_naming_the_id(backend_device, bad):
    w = tinyml.randn(5, 3, device=backend_device)
    with pytest.raises(IndexError, match=f"index {bad} is out of range for an embedding of 5 rows"):
        F.embedding(tinyml.tensor([0, bad], device=backend_device), w)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, float("inf")])
def test_functional_embedding_max_norm_renormalises_like_torch(norm_type):
    """F.embedding(max_norm=) rescales the looked-up rows of the weight in place first, as torch."""
    w = np.random.default_rng(0).standard_normal((5, 3)) * 2
    ours, theirs = tinyml.tensor(w.copy()), torch.tensor(w.copy())
    ids = [[0, 2], [2, 4]]
    out = F.embedding(tinyml.tensor(ids), ours, max_norm=1.5, norm_type=norm_type)
    expected = torch.nn.functional.embedding(torch.tensor(ids), theirs, max_norm=1.5, norm_type=norm_type)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)  # rows 1, 3 untouched


def test_embedding_argument_errors():
    ids = tinyml.tensor(IDS)
    with pytest.raises(NotImplementedError, match="scale_grad_by_freq"):
        F.embedding(ids, tinyml.randn(5, 3), scale_grad_by_freq=True)
    with pytest.raises(RuntimeError, match="Long, Int; but got tinyml.float32"):
        F.embedding(tinyml.randn(2), tinyml.randn(5, 3))
    with pytest.raises(RuntimeError, match=r"'weight' must be 2-D, got shape \(5,\)"):
        F.embedding(ids, tinyml.randn(5))
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        F.embedding(ids, tinyml.randn(5, 3), padding_idx=5)


def test_embedding_backward_kernel(kernels):
    from tinyml.backends import run

    ids = tinyml.tensor([[1, 3, 1], [0, 1, 3]])
    dy = tinyml.randn(2, 3, 4)
    got = run("embedding_backward", ids, dy, 5, 3).numpy()
    want = np.zeros((5, 4), np.float32)
    np.add.at(want, ids.numpy().ravel(), dy.numpy().reshape(-1, 4))
    want[3] = 0
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("ids", [[5], [-1], [[0, 1], [2, -6]], [0, 100, 1]])
def test_embedding_out_of_range_ids_raise_like_torch(backend_device, ids):
    """torch raises IndexError for any id outside [0, num_embeddings), -1 included (it is not the
    last row); so does every tinyml backend, naming the id and the table size."""
    with pytest.raises(IndexError):
        torch.nn.functional.embedding(torch.tensor(ids), torch.zeros(5, 2))
    bad = [i for i in np.ravel(ids) if not 0 <= i < 5]
    w = tinyml.randn(5, 2, device=backend_device, requires_grad=True)
    named = rf"index ({'|'.join(map(str, bad))}) is out of range for an embedding of 5 rows"
    with pytest.raises(IndexError, match=named):
        tinyml.nn.functional.embedding(tinyml.tensor(ids, device=backend_device), w)
    with pytest.raises(IndexError, match="embedding of 5 rows"):
        tinyml.nn.Embedding(5, 2).to(backend_device)(tinyml.tensor(ids, device=backend_device))


def test_embedding_forward_kernels_agree(device):
    """embedding_forward on every backend: rows of any dtype, 0-d and empty ids, an empty table."""
    from tinyml.backends import run

    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64", "float16", "bfloat16", "int64"):
        w = tinyml.tensor(rng.integers(-9, 9, (7, 3)), dtype=getattr(tinyml, dtype), device=device)
        want = w.cpu().numpy()
        for ids in (rng.integers(0, 7, (4, 5)), np.array(6), np.zeros((0, 2), np.int64)):
            for ref in (True, False):
                with tinyml.backends.force_reference(ref):
                    got = run("embedding_forward", w, tinyml.tensor(ids, device=device))
                assert got.dtype is w.dtype and got.shape == ids.shape + (3,)
                np.testing.assert_array_equal(got.cpu().numpy().astype(np.float64),
                                              want[ids].astype(np.float64))
    empty = tinyml.zeros(0, 3, device=device)
    no_ids = tinyml.tensor(np.zeros(0, np.int64), device=device)
    assert run("embedding_forward", empty, no_ids).shape == (0, 3)
    with pytest.raises(IndexError, match="index 0 is out of range for an embedding of 0 rows"):
        run("embedding_forward", empty, tinyml.tensor([0], device=device))


def test_embedding_forward_binding_checks_before_reading():
    """The C++ binding validates ids, dtypes and layout before it copies a row."""
    from tinyml.backends.cpu import _C

    if _C is None:
        pytest.skip("tinyml._C is not built")
    w = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_array_equal(_C.embedding_forward(w, np.array([[4, 0]])), w[[[4, 0]]])
    for ids, msg in (([0, -1], "index -1"), ([5], "index 5"), ([2**62], f"index {2**62}")):
        with pytest.raises(IndexError, match=msg + " is out of range for an embedding of 5 rows"):
            _C.embedding_forward(w, np.array(ids, np.int64))
    with pytest.raises(TypeError, match="int64, got int32"):
        _C.embedding_forward(w, np.array([0], np.int32))
    with pytest.raises(ValueError, match=r"2-D.*\(15,\)"):
        _C.embedding_forward(w.reshape(-1), np.array([0]))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.embedding_forward(w[:, ::2], np.array([0]))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.embedding_forward(w, np.array([[0, 1], [2, 3]])[:, 0])


@needs_C
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,v,d,pad", [(1, 1, 1, -1), (7, 3, 5, -1), (64, 10, 700, 2), (4000, 50, 33, 0)])
def test_cpu_embedding_backward_kernel(dtype, n, v, d, pad):
    """The C++ scatter-add (csrc/embedding.cpp) against the reference: repeated ids under threads,
    padding_idx, directly and through the adapter."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, v, (n // 4 + 1, 4) if n > 4 else (n,))  # many repeats of each id
    dy = rand(rng, ids.shape + (d,), dtype)
    ref = impls("embedding_backward")[1](ids, dy, v, pad)
    close(_C.embedding_backward(ids, dy, v, pad), ref, dtype, "embedding_backward")
    close(impls("embedding_backward")[0](ids.astype(np.int32), dy, v, pad), ref, dtype, "adapter")
    one = np.asarray(ids.flat[0])  # a 0-d id: dy is (D,)
    close(impls("embedding_backward")[0](one, dy.reshape(-1, d)[0], v, pad),
          impls("embedding_backward")[1](one, dy.reshape(-1, d)[0], v, pad), dtype, "0-d id")


@needs_C
def test_cpu_embedding_backward_binding_errors():
    dy = np.ones((3, 4), np.float32)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        _C.embedding_backward(np.array([0, 5, 1]), dy, 5, -1)
    with pytest.raises(IndexError, match="index -1"):
        _C.embedding_backward(np.array([0, -1, 1]), dy, 5, -1)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2,\)"):
        _C.embedding_backward(np.array([0, 1]), dy, 5, -1)
    with pytest.raises(TypeError, match="int64"):
        _C.embedding_backward(np.array([0, 1, 2], np.int32), dy, 5, -1)
