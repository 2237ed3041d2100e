"""Tensor basics: creation ops, dtypes, devices, conversion, repr and errors."""
import numpy as np
import pytest
import torch

import tinyml
from tinyml.testing import assert_close


@pytest.mark.parametrize("data", [[1, 2, 3], [1.5, 2.0], [[True, False]], 3.0, 7, [[1, 2], [3, 4]],
                                  np.float64(1.5), np.int32(3), np.arange(3, dtype=np.int16)])
def test_tensor_dtype_inference_matches_torch(data):
    assert tinyml.tensor(data).dtype.name == str(torch.tensor(data).dtype).replace("torch.", "")


def test_creation_ops_match_torch():
    assert_close(tinyml.zeros(2, 3), torch.zeros(2, 3))
    assert_close(tinyml.ones((2, 3), dtype=tinyml.int32), torch.ones((2, 3), dtype=torch.int32))
    assert_close(tinyml.full((2,), 7), torch.full((2,), 7))
    assert tinyml.full((2,), 7).dtype is tinyml.int64
    assert_close(tinyml.arange(5), torch.arange(5))
    assert_close(tinyml.arange(1, 2, 0.25), torch.arange(1, 2, 0.25))
    assert_close(tinyml.linspace(0, 1, 7), torch.linspace(0, 1, 7))
    assert_close(tinyml.eye(3, 4), torch.eye(3, 4))
    assert tinyml.empty(2, 5).shape == (2, 5)
    x = tinyml.randn(3, 2)
    assert_close(tinyml.zeros_like(x), torch.zeros(3, 2))
    assert tinyml.ones_like(x, dtype=tinyml.float64).dtype is tinyml.float64


def test_random_is_reproducible_and_ranges():
    tinyml.manual_seed(123)
    a = tinyml.randn(100)
    tinyml.manual_seed(123)
    b = tinyml.randn(100)
    assert np.array_equal(a.numpy(), b.numpy())
    r = tinyml.rand(1000)
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    i = tinyml.randint(3, 7, (1000,))
    assert i.dtype is tinyml.int64 and set(np.unique(i.numpy())) == {3, 4, 5, 6}
    assert sorted(tinyml.randperm(6).tolist()) == list(range(6))


def test_rng_state_roundtrip():
    state = tinyml.get_rng_state()
    a = tinyml.rand(5)
    tinyml.set_rng_state(state)
    assert np.array_equal(tinyml.rand(5).numpy(), a.numpy())


def test_metadata_and_views():
    x = tinyml.arange(12.0).reshape(3, 4)
    assert x.shape == (3, 4) and x.ndim == 2 and x.numel() == 12 and x.size(1) == 4 and x.size(-1) == 4
    assert x.stride() == (4, 1) and x.is_contiguous()
    t = x.T
    assert t.shape == (4, 3) and t.stride() == (1, 4) and not t.is_contiguous()
    assert t._base is x._base and t.storage_offset() == 0  # the root of the view chain, as in torch
    with pytest.raises(IndexError, match=r"range of \[-2, 1\], but got 2"):
        x.size(2)


def test_conversions():
    x = tinyml.tensor([1.7, -2.2])
    assert x.to(tinyml.int64).tolist() == [1, -2]
    assert x.double().dtype is tinyml.float64
    assert x.bfloat16().dtype is tinyml.bfloat16
    assert x.half().float().dtype is tinyml.float32
    assert float(tinyml.tensor(2.5)) == 2.5 and int(tinyml.tensor([3])) == 3
    with pytest.raises(RuntimeError, match="2 elements"):
        x.item()
    with pytest.raises(RuntimeError, match="requires grad"):
        x.requires_grad_().numpy()


def test_cast_gradient_flows_back_in_source_dtype():
    x = tinyml.tensor([1.0, 2.0], dtype=tinyml.float64, requires_grad=True)
    (x.float() * 3).sum().backward()
    assert x.grad.dtype is tinyml.float64
    assert_close(x.grad, np.array([3.0, 3.0]))


def test_repr_like_torch():
    assert repr(tinyml.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(tinyml.tensor([1, 2])) == "tensor([1, 2])"
    assert "requires_grad=True" in repr(tinyml.ones(2, requires_grad=True))
    assert "dtype=tinyml.float64" in repr(tinyml.ones(2, dtype=tinyml.float64))


def test_device_errors_are_clear():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tinyml.zeros(2, device="tpu")
    assert tinyml.device("cpu") == "cpu"
    assert tinyml.zeros(1).device.type == "cpu"


def test_unsupported_dtype_is_named():
    with pytest.raises(TypeError, match="uint16"):
        tinyml.tensor(np.array([1], dtype=np.uint16))


def test_import_does_not_load_torch_triton_or_ml_dtypes():
    """`import tinyml` stays light: the heavy optional modules load on first use. (How long the
    import takes is a benchmark, bench/import_time.py, never a test: timings fail on busy machines.)"""
    import subprocess
    import sys

    code = ("import sys, tinyml; "
            "print(*(m in sys.modules for m in ('torch', 'triton', 'ml_dtypes', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False"] * 4, dict(zip(("torch", "triton", "ml_dtypes", "matplotlib"), out))


def test_bfloat16_loads_ml_dtypes_on_first_use():
    import subprocess
    import sys

    code = ("import sys, tinyml, numpy as np; t = tinyml.ones(2, dtype=tinyml.bfloat16); "
            "print('ml_dtypes' in sys.modules, t.numpy().dtype, t.dtype, "
            "tinyml.from_numpy(np.ones(1, t.numpy().dtype)).dtype)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "bfloat16", "tinyml.bfloat16", "tinyml.bfloat16"]


def test_devices_are_interned_and_survive_pickling():
    import copy
    import pickle

    assert tinyml.device("cpu") is tinyml.zeros(1).device
    assert tinyml.device("cuda") is tinyml.device("cuda:0")
    assert pickle.loads(pickle.dumps(tinyml.device("cuda:0"))) is tinyml.device("cuda")
    assert copy.deepcopy(tinyml.device("cpu")).type == "cpu"
    t = tinyml.zeros(2, 3, device=tinyml.device("cpu"))
    assert t.T.reshape(6).shape == (6,)  # a non-contiguous reshape on a device made by name


def test_grad_assignment_is_checked_like_torch():
    """`.grad` takes None or a Tensor of the tensor's device, dtype and shape (torch: TypeError for
    a non-Tensor, RuntimeError for a mismatch); the messages name both values."""
    cases = [(lambda lib: lib.zeros(3, 2), RuntimeError,
              r"gradient of shape \(3, 2\) to a tensor of shape \(2, 3\)"),
             (lambda lib: lib.zeros(1, 3), RuntimeError, r"shape \(1, 3\) to a tensor of shape \(2, 3\)"),
             (lambda lib: lib.zeros(2, 3, dtype=lib.float64), RuntimeError,
              "gradient of dtype tinyml.float64 to a tensor of dtype tinyml.float32"),
             (lambda lib: lib.zeros(2, 3, dtype=lib.int64), RuntimeError, "dtype tinyml.int64 to a tensor"),
             (lambda lib: np.zeros((2, 3), np.float32), TypeError, "or None but got grad of type ndarray"),
             (lambda lib: 0.0, TypeError, "got grad of type float")]
    for rg in (True, False):
        x, xt = tinyml.zeros(2, 3, requires_grad=rg), torch.zeros(2, 3, requires_grad=rg)
        for make, exc, msg in cases:
            with pytest.raises(exc):
                xt.grad = make(torch)
            with pytest.raises(exc, match=msg):
                x.grad = make(tinyml)
            assert x.grad is None
    g = tinyml.ones(2, 3)
    x.grad = g  # the right kind is stored as given (torch keeps the object too)
    assert x.grad is g
    x.grad = None
    assert x.grad is None
    ids = tinyml.tensor([1, 2])
    ids.grad = tinyml.tensor([0, 0])  # an int tensor takes an int gradient, as in torch
    w = tinyml.nn.Parameter(tinyml.zeros(4, dtype=tinyml.float64))
    with pytest.raises(RuntimeError, match="dtype tinyml.float32 to a tensor of dtype tinyml.float64"):
        w.grad = tinyml.zeros(4)
    if tinyml.cuda.is_available():
        with pytest.raises(RuntimeError, match="gradient on device cuda.* to a tensor on device cpu"):
            x.grad = tinyml.zeros(2, 3, device="cuda")


def test_grad_survives_copy_and_pickle():
    import copy
    import pickle

    x = tinyml.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    for y in (copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert y.grad is not None and y.grad.tolist() == [3.0, 3.0]


@pytest.mark.parametrize("spec,match", [
    ("cpu:1", "one cpu device"), ("cuda:-1", "non-negative"), ("cuda:x", "non-negative"),
    ("gpu", "unknown device"), ("", "unknown device"),
])
def test_bad_device_strings_are_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        tinyml.device(spec)
    with pytest.raises(ValueError, match="one cpu device"):
        tinyml.device("cpu", 2)
    assert tinyml.device("cpu:0") is tinyml.device("cpu")  # one interned cpu device, as `is` checks assume
