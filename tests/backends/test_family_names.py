"""A kernel family keeps one name in every layer (DESIGN.md, "Layout"): the module that lists a
kernel in `__all__` has the same file stem in every backend that implements it
(`reference/softmax.py`, `cpu/softmax.py`, `triton/softmax.py`).

The families not aligned yet are listed in EXCEPTIONS, each with why; the test fails both when a
kernel outside the list drifts and when a listed kernel has been aligned (shrink the list then)."""
from tinyml.backends import _MODULES
from tinyml.backends.matrix import load_all_backends

# (kernel names) -> why their file stems still differ between backends
EXCEPTIONS: dict[tuple[str, ...], str] = {
    ("bitwise_and", "bitwise_not", "bitwise_or", "bitwise_xor", "div_trunc", "floor_divide", "fmod",
     "logical_and", "logical_not", "logical_or", "logical_xor", "remainder"):
        "triton/pointwise.py (the integer-aware kernels) vs reference/elementwise.py: not aligned yet",
    ("addcdiv", "addcmul", "clamp", "clamp_backward", "lerp", "masked_fill", "minmax_backward",
     "pow_backward_base", "pow_backward_exponent"):
        "triton/ternary.py (the several-operand kernel) vs reference/elementwise.py: not aligned yet",
}


def _stems() -> dict[str, dict[str, str]]:
    """kernel name -> {backend -> file stem of the module listing it}."""
    assert not [p for p in load_all_backends() if p.startswith("triton")], "the Triton backend must load"
    stems: dict[str, dict[str, str]] = {}
    for (name, backend), module in _MODULES.items():
        if backend in ("reference", "cpu", "triton"):
            stems.setdefault(name, {})[backend] = module.rsplit(".", 1)[1]
    return stems


def test_exceptions_have_no_duplicates():
    listed = [k for names in EXCEPTIONS for k in names]
    assert len(listed) == len(set(listed)), sorted(k for k in listed if listed.count(k) > 1)


def test_every_kernel_has_one_family_name():
    excepted = {k for names in EXCEPTIONS for k in names}
    drifted = {name: by for name, by in _stems().items()
               if len(set(by.values())) > 1 and name not in excepted}
    assert not drifted, f"kernels whose file stem differs between backends: {drifted}"


def test_exceptions_are_still_needed():
    stems = _stems()
    stale = sorted(k for names in EXCEPTIONS for k in names
                   if k not in stems or len(set(stems[k].values())) == 1)
    assert not stale, f"aligned or gone now; remove them from EXCEPTIONS: {stale}"
