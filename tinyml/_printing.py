"""How a tensor prints: PyTorch's format and `set_printoptions`.

Floats, as torch's _Formatter: over the finite values (of the shown part, when summarised), if all
are integers they print as `1.` (scientific when max / min nonzero magnitude > 1000 or max > 1e8), else
with `precision` digits after the point (scientific when max / min > 1000, max > 1e8 or min < 1e-4),
every value right-aligned to the widest; `sci_mode` True / False forces the choice. More than
`threshold` elements print summarised with `edgeitems` per edge, and lines wrap at `linewidth`, as
numpy's array2string does. Complex values print as torch's: the real parts with a formatter over
all real parts (right-aligned), then the imaginary parts' formatter over all imaginary parts with a
`j`, unpadded, and a `+` where no sign leads it (`tensor([1.+2.j, 3.-4.j])`).
"""
from __future__ import annotations

import math

import numpy as np

_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80)}
PRINT_OPTS = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision: int | None = None, threshold: float | None = None,
                     edgeitems: int | None = None, linewidth: int | None = None, profile: str | None = None,
                     sci_mode: bool | None = None) -> None:
    """torch.set_printoptions: `profile` ("default", "short", "full") first, then each option given;
    sci_mode is always set (None: chosen from the values)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, got {profile!r}")
        PRINT_OPTS.update(_PROFILES[profile])
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            PRINT_OPTS[name] = value
    PRINT_OPTS["sci_mode"] = sci_mode


def _float_formatter(arr: np.ndarray):
    """A function value -> string, all strings right-aligned to one width (torch's _Formatter)."""
    p, sci = PRINT_OPTS["precision"], PRINT_OPTS["sci_mode"]
    finite = arr[np.isfinite(arr)].astype(np.float64)
    nonzero = np.abs(finite[finite != 0])
    int_mode = bool(np.all(np.ceil(finite) == finite))
    if nonzero.size:
        lo, hi = float(nonzero.min()), float(nonzero.max())
        big_range = hi / lo > 1000.0 or hi > 1e8
        auto_sci = big_range if int_mode else big_range or lo < 1e-4
    else:
        auto_sci = False
    use_sci = auto_sci if sci is None else sci
    if use_sci:
        fmt = lambda v: f"{v:.{p}e}"  # noqa: E731
    elif int_mode:
        fmt = lambda v: f"{v:.0f}."  # noqa: E731
    else:
        fmt = lambda v: f"{v:.{p}f}"  # noqa: E731

    def one(v) -> str:
        v = float(v)
        return fmt(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))

    width = max((len(one(v)) for v in np.unique(arr.reshape(-1))), default=0)
    return lambda v: one(v).rjust(width)


def _complex_formatter(arr: np.ndarray):
    """value -> "re+imj", each part formatted as torch's two _Formatters over the shown values."""
    real, imag = _float_formatter(arr.real), _float_formatter(arr.imag)

    def one(v) -> str:
        im = (imag(v.imag) + "j").lstrip()
        return real(v.real) + (im if im[0] in "+-" else "+" + im)

    return one


def _summarized(arr: np.ndarray) -> np.ndarray:
    """The values a summarised print shows (edgeitems at each end of every long dim): torch chooses
    the float format from these alone."""
    if arr.size <= PRINT_OPTS["threshold"]:
        return arr
    k = PRINT_OPTS["edgeitems"]
    for axis, n in enumerate(arr.shape):
        if n > 2 * k:
            arr = np.take(arr, list(range(k)) + list(range(n - k, n)), axis=axis)
    return arr


def format_array(arr: np.ndarray, prefix: str = "tensor(") -> str:
    """The values part of a tensor's repr, under the current print options."""
    threshold = PRINT_OPTS["threshold"]
    opts = dict(separator=", ", prefix=prefix, max_line_width=PRINT_OPTS["linewidth"],
                threshold=threshold if math.isfinite(threshold) else np.iinfo(np.int64).max,
                edgeitems=PRINT_OPTS["edgeitems"])
    if arr.dtype.kind == "f" and arr.size:
        opts["formatter"] = {"float_kind": _float_formatter(_summarized(arr))}
    elif arr.dtype.kind == "c" and arr.size:
        opts["formatter"] = {"complex_kind": _complex_formatter(_summarized(arr))}
    # torch writes the ellipsis of a summarised row as " ...", numpy as "..."
    return np.array2string(arr, **opts).replace(", ..., ", ",  ..., ")
