"""A kernel family keeps one name in every layer (DESIGN.md, "Layout").

Backends: the module that lists a kernel in `__all__` has the same file stem in every backend that
implements it (`reference/softmax.py`, `cpu/softmax.py`, `triton/softmax.py`).

Ops: the kernels an `ops/<family>.py` names (at its run / run_on / dispatch / _view calls) live in
`backends/*/<family>.py`, so a reader follows an op to its kernels by the file name. An op that
runs a kernel of another family (a copy, a sum, a gather) says so in BORROWED below, with why.
Private ops modules (`ops/_*.py`) serve several families and are not checked."""
import os

from kernel_calls import kernel_name_args, literals, sources

from tinyml.backends import _MODULES
from tinyml.backends.matrix import load_all_backends

# ops family -> {other kernel family whose kernels it runs: why}
BORROWED: dict[str, dict[str, str]] = {
    "indexing": {"creation": "x[idx] = v writes into a clone", "slicing": "basic indexing is slice_view"},
    "inplace": {"creation": "an in-place op writes its result back with copy_"},
    "loss": {"loss_elementwise": "the backends keep the fused row kernels (cross_entropy) apart from "
                                 "the per-element losses; the ops share one file"},
    "reduce": {"reduce_stats": "the backends keep sum (which other families run too) apart from the "
                               "statistics (prod, var, std, norm, logsumexp, all, any)"},
    "sort": {"reduce_minmax": "the gradient of a selected value is amax_backward's scatter"},
}


def _stems() -> dict[str, dict[str, str]]:
    """kernel name -> {backend -> file stem of the module listing it}."""
    assert not [p for p in load_all_backends() if p.startswith("triton")], "the Triton backend must load"
    stems: dict[str, dict[str, str]] = {}
    for (name, backend), module in _MODULES.items():
        if backend in ("reference", "cpu", "triton"):
            stems.setdefault(name, {})[backend] = module.rsplit(".", 1)[1]
    return stems


def test_every_kernel_has_one_family_name():
    drifted = {name: by for name, by in _stems().items() if len(set(by.values())) > 1}
    assert not drifted, f"kernels whose file stem differs between backends: {drifted}"


def _families_run_by_ops() -> dict[str, dict[str, set[str]]]:
    """ops family -> {kernel family -> the kernels of it the ops file names}."""
    family = {name: next(iter(by.values())) for name, by in _stems().items()}
    used: dict[str, dict[str, set[str]]] = {}
    for path, tree in sources("tinyml/ops/*.py"):
        stem = os.path.basename(path)[:-3]
        if stem.startswith("_"):
            continue
        for _, arg, _ in kernel_name_args(tree):
            for name in literals(arg) or ():
                if name in family:
                    used.setdefault(stem, {}).setdefault(family[name], set()).add(name)
    return used


def test_ops_run_the_kernels_of_their_own_family():
    strays = {ops: {fam: sorted(names) for fam, names in by.items()
                    if fam != ops and fam not in BORROWED.get(ops, {})}
              for ops, by in _families_run_by_ops().items()}
    strays = {ops: by for ops, by in strays.items() if by}
    assert not strays, ("ops files running kernels of another family (align the names, or declare "
                        f"the borrowing in BORROWED): {strays}")


def test_borrowed_families_are_still_borrowed():
    used = _families_run_by_ops()
    stale = sorted(f"{ops} -> {fam}" for ops, fams in BORROWED.items() for fam in fams
                   if fam not in used.get(ops, {}))
    assert not stale, f"no longer borrowed; remove them from BORROWED: {stale}"
