"""Helpers for the fault tests of the C++-backed ops (tests/ops/test_native_faults*.py): run one function
on tinyml's numpy reference and on its C++ kernels, and on PyTorch as the oracle, with the inputs in a
chosen memory layout, and compare the outputs and every input's gradient (values, NaN positions and
infinities), or check that tinyml refuses an input exactly when PyTorch does.

    check(lambda x: F.silu(x), TF.silu, [x], dtype="float32", layouts=["sliced"])

The oracle runs in float64 on the values the dtype holds (the exact function, rounded once), unless
`oracle_dtype` says otherwise; tinyml's results must lie within the dtype's "reduction" tolerance of it
and of each other. Float16/bfloat16 reach the reference through the cpu adapters' fallback.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import tinyml
from tinyml.testing import assert_close

LAYOUTS = ("contiguous", "transposed", "sliced")
DTYPES = ("float32", "float64", "float16", "bfloat16")
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
SPOTS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), NONFINITE), max_size=3)
REFUSED = (RuntimeError, ValueError, TypeError)


def rounded(arr, dtype: str) -> np.ndarray:
    """arr's values as `dtype` holds them, as a float64 array."""
    return torch.tensor(np.array(arr, dtype=np.float64), dtype=getattr(torch, dtype)).double().numpy()


def inject(arr: np.ndarray, spots) -> np.ndarray:
    """A copy of arr with values put at positions given as fractions of its size."""
    out = np.array(arr, dtype=np.float64, copy=True)
    for frac, value in spots:
        if out.size:
            out[np.unravel_index(min(int(frac * out.size), out.size - 1), out.shape)] = value
    return out


def tensor_in(arr: np.ndarray, dtype: str, requires_grad: bool, layout: str = "contiguous") -> tinyml.Tensor:
    """A tinyml leaf holding arr's values: C-contiguous, a transposed view (the last two dims swapped in
    memory) or a view with stride 2 along the last dim."""
    arr = np.asarray(arr, dtype=np.float64)
    if layout == "transposed" and arr.ndim >= 2:
        t = tinyml.tensor(np.ascontiguousarray(np.swapaxes(arr, -1, -2)), dtype=dtype).transpose(-1, -2)
    elif layout == "sliced" and arr.ndim >= 1:
        base = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],))
        base[..., ::2] = arr
        t = tinyml.tensor(base, dtype=dtype)[..., ::2]
    else:
        t = tinyml.tensor(arr, dtype=dtype)
    return t.detach().requires_grad_(requires_grad)


def _outputs(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _weighted_sum(outs, weights, make):
    """sum_k sum(out_k * w_k): its gradient with respect to out_k is w_k, whatever out_k holds."""
    total = 0
    with np.errstate(invalid="ignore", over="ignore"):
        for o, w in zip(outs, weights):
            total = total + (o * make(w, o)).sum()
    return total


def check(tm_fn, th_fn, arrays, *, dtype: str = "float32", layouts=None, constants: int = 0, seed: int = 0,
          grad: bool = True, rtol=None, atol=None, oracle_dtype: str = "float64",
          backends=("reference", "cpu")) -> None:
    """Forward and backward of tm_fn on each backend against th_fn (torch, in `oracle_dtype`) and against
    the first backend; the last `constants` arrays get no gradient. Where torch refuses the inputs,
    tinyml must refuse them too, with RuntimeError, ValueError or TypeError and a message."""
    arrays = [rounded(a, dtype) for a in arrays]
    layouts = list(layouts or ["contiguous"] * len(arrays))
    needs = [grad and i < len(arrays) - constants for i in range(len(arrays))]
    th_dtype = getattr(torch, oracle_dtype)
    th_in = [torch.tensor(a, dtype=th_dtype).requires_grad_(g) for a, g in zip(arrays, needs)]
    try:
        th_outs = _outputs(th_fn(*th_in))
    except (RuntimeError, ValueError) as e:  # torch refuses: so must tinyml, on every backend
        for backend in backends:
            with tinyml.backends.force_reference(backend == "reference"), pytest.raises(REFUSED) as info:
                tm_fn(*[tensor_in(a, dtype, g, lay) for a, g, lay in zip(arrays, needs, layouts)])
            assert str(info.value), f"[{backend}] an empty error message where torch says: {e}"
        return
    rng = np.random.default_rng(seed)
    weights = [rounded(rng.standard_normal(tuple(o.shape)), dtype) for o in th_outs]
    diff_th = [o for o in th_outs if o.requires_grad]
    if grad and diff_th:
        _weighted_sum(diff_th, weights, lambda w, o: torch.tensor(w, dtype=o.dtype)).backward()
    first = None
    for backend in backends:
        with tinyml.backends.force_reference(backend == "reference"):
            tm_in = [tensor_in(a, dtype, g, lay) for a, g, lay in zip(arrays, needs, layouts)]
            tm_outs = _outputs(tm_fn(*tm_in))
            assert len(tm_outs) == len(th_outs), f"[{backend}] {len(tm_outs)} outputs, torch {len(th_outs)}"
            for k, (a, b) in enumerate(zip(tm_outs, th_outs)):
                shapes = tuple(a.shape), tuple(b.shape)
                assert shapes[0] == shapes[1], f"[{backend}] output {k}: shape {shapes[0]}, torch {shapes[1]}"
                if b.dtype.is_floating_point:
                    assert a.dtype.name == dtype, f"[{backend}] output {k} has dtype {a.dtype}, input {dtype}"
                assert_close(a, b, rtol, atol, kind="reduction", dtype=dtype, msg=f"[{backend}] output {k}:")
            results = [o.detach().numpy() for o in tm_outs]
            if grad and diff_th:
                diff_tm = [o for o, b in zip(tm_outs, th_outs) if b.requires_grad]
                _weighted_sum(diff_tm, weights, lambda w, o: tinyml.tensor(w, dtype=o.dtype)).backward()
                for i, (a, b) in enumerate(zip(tm_in, th_in)):
                    if not needs[i]:
                        continue
                    assert a.grad is not None or b.grad is None, f"[{backend}] input {i}: no gradient"
                    # an input the output does not depend on: None in torch, zeros or None here
                    expected = torch.zeros(b.shape, dtype=b.dtype) if b.grad is None else b.grad
                    if a.grad is not None:
                        assert_close(a.grad, expected, rtol, atol, kind="reduction", dtype=dtype,
                                     msg=f"[{backend}] grad of input {i}:")
                        results.append(a.grad.numpy())
        if first is None:
            first = (backend, results)
            continue
        for k, (a, e) in enumerate(zip(results, first[1])):
            assert_close(a, e, rtol, atol, kind="reduction", dtype=dtype,
                         msg=f"{backend} vs {first[0]}, result {k}:")


def refuses(fn, *names) -> str:
    """Run fn on both backends; each must raise RuntimeError/ValueError/TypeError whose message
    contains every string in `names` (the values involved). Returns the cpu message."""
    msg = ""
    for backend in ("reference", "cpu"):
        with tinyml.backends.force_reference(backend == "reference"), pytest.raises(REFUSED) as info:
            fn()
        msg = str(info.value)
        for name in names:
            assert str(name) in msg, f"[{backend}] {name!r} not named in: {msg}"
    return msg
