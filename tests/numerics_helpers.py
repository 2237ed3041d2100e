"""Helpers for the non-finite and precision tests of the fused ops (softmax, log_softmax,
cross_entropy, layer_norm, rms_norm, attention): run one function on tinyml (on a backend: the numpy
reference, the C++ kernels, or the cuda device's Triton kernels) and on PyTorch, and compare the
forward output and every input's gradient, NaN positions and infinities included.

    compare(lambda x: F.softmax(x, -1), lambda x: torch.softmax(x, -1), [x], backend="cpu")

Inputs are numpy arrays holding the values (NaN and inf allowed), rounded to `dtype` on both sides;
a non-C-contiguous array becomes a transposed view on both sides. For float16/bfloat16 PyTorch runs
in float32 on the same rounded values (tinyml's half kernels compute in float32 too; PyTorch's own
bfloat16 layer_norm gave a dbias 25% off over 33 rows), compared with the half dtype's tolerance.
The upstream gradient is random, finite and rounded to `dtype`.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from helpers import to_tinyml, to_torch

import tinyml
from tinyml.testing import assert_close

BACKENDS = ["reference", "cpu", "cuda"]
HALF = ("float16", "bfloat16")


def backend_context(backend: str):
    """(device, context manager) running tinyml's kernels on `backend`; skips cuda when absent."""
    if backend == "cuda":
        if not tinyml.cuda.is_available():
            pytest.skip("no cuda device and Triton's interpreter is not enabled")
        return "cuda", contextlib.nullcontext()
    return "cpu", tinyml.backends.force_reference(backend == "reference")


def rounded(arr: np.ndarray, dtype: str) -> np.ndarray:
    """arr's values as `dtype` would hold them, as float64 (keeps the memory layout)."""
    return to_torch(np.asarray(arr), dtype, False).double().numpy()


def compare(tm_fn, th_fn, arrays, *, dtype: str = "float32", backend: str = "cpu", grad: bool = True,
            constants: int = 0, rtol=None, atol=None, seed: int = 0, msg: str = ""):
    """Forward and backward of tm_fn (tinyml) against th_fn (torch) on `arrays` (the last `constants`
    of them without gradients, e.g. an attention mask); returns tinyml's output and input gradients
    as numpy arrays."""
    device, ctx = backend_context(backend)
    oracle = "float32" if dtype in HALF else dtype
    arrays = [rounded(a, dtype) if dtype in HALF else a for a in arrays]
    with ctx:
        needs = [grad and i < len(arrays) - constants for i in range(len(arrays))]
        tm = [to_tinyml(a, dtype, g, device) for a, g in zip(arrays, needs)]
        th = [to_torch(a, oracle, g) for a, g in zip(arrays, needs)]
        out_tm, out_th = tm_fn(*tm), th_fn(*th)
        shapes = tuple(out_tm.shape), tuple(out_th.shape)
        assert shapes[0] == shapes[1], f"{msg} shape {shapes[0]} vs torch's {shapes[1]}"
        assert_close(out_tm, out_th, rtol, atol, kind="reduction", dtype=dtype, msg=f"{msg} forward:")
        if not grad:
            return out_tm.detach().cpu().numpy(), []
        w = rounded(np.random.default_rng(seed).standard_normal(tuple(out_th.shape)), dtype)
        with np.errstate(invalid="ignore"):  # (the sum of an output holding inf and -inf is NaN)
            loss = (out_tm * tinyml.tensor(w, dtype=out_tm.dtype, device=device)).sum()
        loss.backward()
        (out_th * torch.tensor(w, dtype=out_th.dtype)).sum().backward()
        for i, (a, b) in enumerate(zip(tm, th)):
            assert (a.grad is None) == (b.grad is None), f"{msg} input {i}: gradient presence differs"
            if b.grad is not None:
                assert_close(a.grad, b.grad, rtol, atol, kind="reduction", dtype=dtype,
                             msg=f"{msg} grad {i}:")
    return out_tm.detach().cpu().numpy(), [a.grad.cpu().numpy() for a in tm if a.grad is not None]


def compare_backends(tm_fn, th_fn, arrays, backends=("reference", "cpu"), **kw) -> None:
    """compare() on each backend, and each backend's results against the first's (the numpy
    reference by default): the same values, NaN positions and infinities."""
    dtype = kw.get("dtype", "float32")
    first = None
    for backend in backends:
        out, grads = compare(tm_fn, th_fn, arrays, backend=backend, msg=f"[{backend}]", **kw)
        if first is None:
            first = (out, grads)
            continue
        for i, (a, e) in enumerate(zip([out, *grads], [first[0], *first[1]])):
            assert_close(a, e, kw.get("rtol"), kw.get("atol"), kind="reduction", dtype=dtype,
                         msg=f"{backend} vs {backends[0]}, {'forward' if i == 0 else f'grad {i - 1}'}:")


def inject(arr: np.ndarray, spots) -> np.ndarray:
    """A copy of arr with values put at positions given as fractions of its size: spots is a list
    of (fraction in [0, 1), value) pairs, as hypothesis draws them."""
    out = np.array(arr, copy=True)
    for frac, value in spots:
        if out.size:
            out[np.unravel_index(min(int(frac * out.size), out.size - 1), out.shape)] = value
    return out


def layout(arr: np.ndarray, transposed: bool) -> np.ndarray:
    """arr itself, or the same values in a transposed memory layout (a non-contiguous view)."""
    if not transposed or arr.ndim < 2:
        return arr
    return np.swapaxes(np.ascontiguousarray(np.swapaxes(arr, -1, -2)), -1, -2)
