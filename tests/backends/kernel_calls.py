"""Where tinyml's modules name kernels, read from their source (ast): the calls of `run` (and its
fixed-arity forms `run1`, `run2`), `run_on`, `dispatch` and ops/movement.py's `_view`, and the
kernel names they spell out. Shared by test_dispatch.py (literal names) and test_family_names.py
(an op's kernels live in its family)."""
from __future__ import annotations

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# call name -> the position of the argument naming the kernel
_KERNEL_ARG = {"run": 0, "run1": 0, "run2": 0, "dispatch": 0, "run_on": 1, "_view": 1}


def sources(pattern: str) -> list[tuple[str, ast.Module]]:
    """(path relative to the repository, parsed module) of each file matching `pattern`."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True)):
        with open(path, encoding="utf-8") as f:
            out.append((os.path.relpath(path, ROOT), ast.parse(f.read(), filename=path)))
    return out


def callers() -> list[tuple[str, ast.Module]]:
    """Every module of tinyml that is not a backend: where kernels are run from."""
    return [(p, t) for p, t in sources("tinyml/**/*.py") if not p.startswith("tinyml/backends/")]


def kernel_name_args(tree: ast.Module):
    """(call name, the argument naming the kernel, line) of each run / run_on / dispatch / _view call
    (`run(...)` or `backends.run(...)`; `subprocess.run` is not one)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and getattr(f.value, "id", "") == "backends":
            fn = f.attr
        else:
            fn = getattr(f, "id", "")
        pos = _KERNEL_ARG.get(fn)
        if pos is not None and len(node.args) > pos:
            yield fn, node.args[pos], node.lineno


def literals(arg) -> list | None:
    """The kernel names an argument spells out: "mul", or both sides of `"amax" if is_max else
    "amin"`; None for a variable (a name or attribute holding a literal set elsewhere)."""
    if isinstance(arg, ast.IfExp):
        sides = [literals(arg.body), literals(arg.orelse)]
        return None if None in sides else sides[0] + sides[1]
    if isinstance(arg, ast.Constant):
        return [arg.value]
    return None
