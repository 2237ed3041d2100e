"""Shared test helpers: run one function on tinyml and on PyTorch, compare forward and backward.

    check_op([(3, 4), (4,)], lambda x, y: x * y)               # same code on both libraries
    check_op([(5, 7)], lambda x: tinyml.cumsum(x, 1), lambda x: torch.cumsum(x, 1))

Inputs are random (seeded) numpy arrays turned into leaf tensors of both libraries; the
backward pass uses a random upstream gradient and compares every input's gradient.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

import tinyml
from tinyml.testing import assert_close

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path: str, name: str | None = None):
    """The module of a repository file outside the packages (an example or a bench script), loaded by
    its path relative to the repository root under `name` (default: the file's stem)."""
    name = name or os.path.splitext(os.path.basename(relative_path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, relative_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TORCH_DTYPE = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16",
               "int64": "int64", "int32": "int32", "bool": "bool"}


def make_inputs(shapes, dtype="float32", low=-2.0, high=2.0, seed=0, noncontiguous=False):
    """Random numpy arrays; with noncontiguous=True each is a transposed view of a bigger array."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        if dtype == "bool":
            arr = rng.random(shape) > 0.5
        elif dtype.startswith("int"):
            arr = rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)
        else:
            arr = (rng.random(shape) * (high - low) + low).astype(np.float64)
        if noncontiguous and len(shape) >= 2:
            arr = np.ascontiguousarray(np.swapaxes(arr, -1, -2))
            arr = np.swapaxes(arr, -1, -2)  # same values, transposed strides
        out.append(arr)
    return out


def to_tinyml(arr, dtype, requires_grad, device="cpu"):
    t = tinyml.tensor(np.asarray(arr), dtype=dtype, device=device)
    if not arr.flags["C_CONTIGUOUS"] and arr.ndim >= 2:
        t = tinyml.tensor(np.ascontiguousarray(np.swapaxes(arr, -1, -2)), dtype=dtype, device=device)
        t = t.transpose(-1, -2).detach()
    return t.requires_grad_(requires_grad)


def to_torch(arr, dtype, requires_grad):
    t = torch.tensor(np.array(arr, order="C"), dtype=getattr(torch, TORCH_DTYPE[dtype]))  # keeps 0-d as 0-d
    if not arr.flags["C_CONTIGUOUS"] and arr.ndim >= 2:
        t = torch.tensor(np.ascontiguousarray(np.swapaxes(arr, -1, -2)),
                         dtype=getattr(torch, TORCH_DTYPE[dtype])).transpose(-1, -2)
    return t.requires_grad_(requires_grad)


def check_op(shapes, tinyml_fn, torch_fn=None, *, dtype="float32", low=-2.0, high=2.0, seed=0, grad=True,
             rtol=None, atol=None, kind="exact", noncontiguous=False, inputs=None, device="cpu"):
    """Forward and backward of `tinyml_fn` equal `torch_fn`'s (default: the same function) on
    random inputs of `shapes` (or the given numpy `inputs`), with the tinyml tensors on `device`
    (torch runs on the cpu). Returns the tinyml output."""
    torch_fn = torch_fn or tinyml_fn
    arrays = inputs if inputs is not None else make_inputs(shapes, dtype, low, high, seed, noncontiguous)
    floating = dtype in ("float32", "float64", "float16", "bfloat16")
    want_grad = grad and floating
    tm = [to_tinyml(a, dtype, want_grad, device) for a in arrays]
    th = [to_torch(a, dtype, want_grad) for a in arrays]
    out_tm, out_th = tinyml_fn(*tm), torch_fn(*th)
    outs_tm = out_tm if isinstance(out_tm, (tuple, list)) else (out_tm,)
    outs_th = out_th if isinstance(out_th, (tuple, list)) else (out_th,)
    assert len(outs_tm) == len(outs_th), f"{len(outs_tm)} outputs vs torch's {len(outs_th)}"
    for a, b in zip(outs_tm, outs_th):
        assert tuple(a.shape) == tuple(b.shape), f"shape {tuple(a.shape)} vs torch {tuple(b.shape)}"
        assert a.dtype.name == str(b.dtype).replace("torch.", ""), f"dtype {a.dtype} vs torch {b.dtype}"
        assert_close(a, b, rtol=rtol, atol=atol, kind=kind, msg="forward:")
    if not want_grad:
        return out_tm
    rng = np.random.default_rng(seed + 1)
    diff = [(a, b) for a, b in zip(outs_tm, outs_th) if b.requires_grad]
    if not diff:
        return out_tm
    loss_tm = loss_th = 0
    for a, b in diff:
        w = rng.standard_normal(tuple(b.shape))
        loss_tm = loss_tm + (a * tinyml.tensor(w, dtype=a.dtype, device=a.device)).sum()
        loss_th = loss_th + (b * torch.tensor(w, dtype=b.dtype)).sum()
    loss_tm.backward()
    loss_th.backward()
    for i, (a, b) in enumerate(zip(tm, th)):
        if b.grad is None:
            assert a.grad is None or np.all(a.grad.numpy() == 0), f"input {i}: tinyml has a grad, torch has none"
            continue
        assert a.grad is not None, f"input {i}: torch has a gradient, tinyml has none"
        assert_close(a.grad, b.grad, rtol=rtol, atol=atol, kind=kind, msg=f"grad of input {i}:")
    return out_tm
