"""Shared helpers of the complex-dtype tests (tests/test_complex*.py): random complex inputs and one
forward + backward comparison against torch.

`check_against_torch(fn, *arrays)` runs fn(T, *tensors) on tinyml and on torch with the same
inputs (complex or real numpy arrays, each requiring grad), reduces the output to a real loss
sum(view_as_real(out) * w) (or sum(out * w) for a real output) with the same random w, and
compares outputs and every input's gradient (PyTorch's convention: z.grad = dL/dx + i dL/dy)."""
from __future__ import annotations

import numpy as np
import torch

import tinyml


def crandn(*shape, dtype=np.complex128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _loss(T, out, w):
    real = T.view_as_real(out) if out.is_complex() else out
    return (real * T.tensor(w, dtype=real.dtype)).sum()


def check_against_torch(fn, *arrays, rtol: float = 1e-10, atol: float = 1e-12, seed: int = 1):
    """Forward and backward of fn(T, *tensors) in tinyml and torch agree; returns tinyml's output."""
    ours = [tinyml.tensor(a, requires_grad=a.dtype.kind in "fc") for a in arrays]
    theirs = [torch.tensor(a, requires_grad=a.dtype.kind in "fc") for a in arrays]
    out, t_out = fn(tinyml, *ours), fn(torch, *theirs)
    assert str(out.dtype).split(".")[-1] == str(t_out.dtype).split(".")[-1], (out.dtype, t_out.dtype)
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), rtol=rtol, atol=atol)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(tuple(out.shape) + ((2,) if out.is_complex() else ()))
    _loss(tinyml, out, w).backward()
    _loss(torch, t_out, w).backward()
    for k, (x, tx) in enumerate(zip(ours, theirs)):
        if tx.grad is None:
            assert x.grad is None, f"input {k}: tinyml has a gradient where torch has none"
            continue
        assert x.grad is not None, f"input {k}: no gradient (torch has one)"
        assert x.grad.dtype is x.dtype, f"input {k}: gradient dtype {x.grad.dtype}, input {x.dtype}"
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")
    return out
