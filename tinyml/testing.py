"""Testing helpers: one tolerance table per dtype, assert_close, and gradcheck.

Tolerances (rtol, atol). "exact-order" ops compute in the same order as the reference; reductions
and fused kernels sum in a different order, so they use the looser `reduction` row; bf16 and
fp16 carry 8 and 11 bits of mantissa.
"""
from __future__ import annotations

import numpy as np

TOLERANCES = {
    # dtype name: {kind: (rtol, atol)}
    "float64": {"exact": (1e-7, 1e-9), "reduction": (1e-6, 1e-8)},
    "float32": {"exact": (1e-5, 1e-6), "reduction": (1e-4, 1e-5)},
    "float16": {"exact": (1e-3, 1e-3), "reduction": (1e-2, 1e-2)},
    "bfloat16": {"exact": (1.6e-2, 1e-2), "reduction": (5e-2, 5e-2)},
}


def tolerance(dtype, kind: str = "exact") -> tuple[float, float]:
    """(rtol, atol) for a dtype name/object and a kind ('exact' or 'reduction'); ints compare exactly."""
    name = getattr(dtype, "name", str(dtype))
    name = {"complex64": "float32", "complex128": "float64"}.get(name, name)  # each part as its real dtype
    if name not in TOLERANCES:
        return (0.0, 0.0)
    return TOLERANCES[name][kind]


def _to_numpy(x) -> np.ndarray:
    from .tensor import Tensor

    if isinstance(x, Tensor):
        arr = x.detach().cpu().numpy()
    elif hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor
        x = x.detach().cpu()
        arr = (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()
    else:
        arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float32)
    return arr


def assert_close(actual, expected, rtol: float | None = None, atol: float | None = None, kind: str = "exact",
                 dtype=None, check_shape: bool = True, msg: str = "") -> None:
    """Raise AssertionError naming the worst element unless |a - e| <= atol + rtol |e| everywhere.

    Tolerances come from the table for the dtype of `actual` unless given. NaNs must match NaNs.
    """
    from .tensor import Tensor

    if dtype is None:
        dtype = actual.dtype if isinstance(actual, Tensor) else getattr(_to_numpy(actual), "dtype", None)
    table_rtol, table_atol = tolerance(dtype, kind)
    rtol = table_rtol if rtol is None else rtol
    atol = table_atol if atol is None else atol
    a, e = _to_numpy(actual), _to_numpy(expected)
    if check_shape and a.shape != e.shape:
        raise AssertionError(f"{msg} shape mismatch: actual {a.shape} vs expected {e.shape}")
    if a.dtype == np.bool_ or e.dtype == np.bool_:
        if not np.array_equal(a, e):
            raise AssertionError(f"{msg} bool tensors differ at {int(np.sum(a != e))} positions")
        return
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    nan_a, nan_e = np.isnan(a64), np.isnan(e64)
    if not np.array_equal(nan_a, nan_e):
        raise AssertionError(f"{msg} NaN positions differ: {int(nan_a.sum())} in actual, {int(nan_e.sum())} expected")
    with np.errstate(invalid="ignore"):
        same_inf = (a64 == e64)
        diff = np.where(same_inf | nan_a, 0.0, np.abs(a64 - e64))
    bound = atol + rtol * np.abs(np.where(np.isfinite(e64), e64, 0))
    bad = diff > bound
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, diff - bound, -np.inf)), bad.shape) if bad.ndim else ()
        raise AssertionError(
            f"{msg} {int(bad.sum())} of {bad.size} elements differ beyond rtol={rtol}, atol={atol}; worst at index "
            f"{tuple(int(i) for i in idx)}: actual {a64[idx]!r} vs expected {e64[idx]!r} (|diff| {diff[idx]:.3g})")


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Compare autograd's gradients of `fn(*inputs)` with float64 central differences.

    Inputs that require grad must be float64. The check uses a random projection of the output
    (sum(out * w)) so that one backward covers every output element.
    """
    from . import ops
    from .autograd import no_grad
    from .tensor import Tensor

    inputs = list(inputs)
    diff_inputs = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    for x in diff_inputs:
        if x.dtype.name != "float64":
            raise TypeError(f"gradcheck needs float64 inputs, got {x.dtype} for an input of shape {tuple(x.shape)}")
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    rng = np.random.default_rng(0)
    weights = [Tensor(rng.standard_normal(o.shape)).to(o.device) for o in outs]

    def scalar(*xs):
        res = fn(*xs)
        res = res if isinstance(res, (tuple, list)) else (res,)
        total = None
        for r, w in zip(res, weights):
            term = ops.sum(r * w)
            total = term if total is None else total + term
        return total

    for x in diff_inputs:
        x.grad = None
    scalar(*inputs).backward()
    for k, x in enumerate(diff_inputs):
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.cpu().numpy().astype(np.float64)
        numeric = np.zeros(x.shape)
        on_host = x.device.type == "cpu"
        flat = x.detach().cpu().numpy()  # x's own memory on cpu; on cuda a host copy

        def set_entry(i, value) -> None:
            flat[i] = value
            if not on_host:
                x.copy_(Tensor(flat).to(x.device))

        with no_grad():
            for i in np.ndindex(*x.shape):
                orig = flat[i]
                set_entry(i, orig + eps)
                plus = scalar(*inputs).item()
                set_entry(i, orig - eps)
                minus = scalar(*inputs).item()
                set_entry(i, orig)
                numeric[i] = (plus - minus) / (2 * eps)
        if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), analytic.shape) if analytic.ndim else ()
            raise AssertionError(f"gradcheck failed for input {k} of shape {tuple(x.shape)}: analytic "
                                 f"{analytic[worst]!r} vs numeric {numeric[worst]!r} at index {worst}")
    return True
