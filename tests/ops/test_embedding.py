"""embedding (ops/embedding.py) against PyTorch, forward and backward, on every backend of the
family: the numpy reference, the C++ kernels (cpu) and the Triton kernels (cuda: a GPU, or
Triton's interpreter)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
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


def test_embedding_argument_errors():
    ids = tinyml.tensor(IDS)
    with pytest.raises(NotImplementedError, match="max_norm"):
        F.embedding(ids, tinyml.randn(5, 3), max_norm=1.0)
    with pytest.raises(RuntimeError, match="Long, Int; but got tinyml.float32"):
        F.embedding(tinyml.randn(2), tinyml.randn(5, 3))
    with pytest.raises(RuntimeError, match=r"'weight' must be 2-D, got shape \(5,\)"):
        F.embedding(ids, tinyml.randn(5))
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        F.embedding(ids, tinyml.randn(5, 3), padding_idx=5)
