"""The import graph of tinyml/ (DESIGN.md: dependencies run one way): no module-level import cycle,
and the core layers in order, tensor <- autograd <- ops <- tensor_methods. Imports inside
functions are not edges here: they are the documented last resort."""
from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tinyml")


def _modules() -> dict[str, str]:
    mods = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = "tinyml." + os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                mods[name.removesuffix(".__init__")] = path
    return mods


def _imported(module: str, node, is_package: bool, mods: dict) -> set[str]:
    """The tinyml modules one import statement loads (a name imported from a package may be a submodule)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in mods}
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
    target = ".".join(p for p in (base, node.module or "") if p)
    subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods}
    return subs | ({target} if len(subs) < len(node.names) and target in mods else set())


def import_graph() -> dict[str, set[str]]:
    """module -> the tinyml modules it imports at module level (in try/if blocks too, not in defs)."""
    mods, graph = _modules(), {}
    for name, path in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        deps = set()
        for top in tree.body:
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for node in ast.walk(top):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    deps |= _imported(name, node, path.endswith("__init__.py"), mods)
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    out.append(sorted(group))
    return out


def test_no_import_cycle_inside_tinyml():
    found = cycles(import_graph())
    listed = "\n".join(" <-> ".join(c) for c in found)
    assert not found, "module-level import cycles inside tinyml/:\n" + listed


@pytest.mark.parametrize("graph,want", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"a", "b"}}, []),
])
def test_the_cycle_finder_finds_cycles(graph, want):
    assert cycles(graph) == want


def test_the_core_imports_run_one_way():
    graph = import_graph()
    above = ("tinyml.ops", "tinyml.backends", "tinyml.autograd")
    assert not {d for d in graph["tinyml.tensor"] if d.startswith(above)}
    assert "tinyml.tensor" in graph["tinyml.autograd"]
    assert not {d for d in graph["tinyml.autograd"] if d.startswith("tinyml.ops")}
    ops_modules = [m for m in graph if m.startswith("tinyml.ops.")]
    back = [m for m in ops_modules if "tinyml.ops" in graph[m]]
    assert not back, f"ops modules that import the ops package back: {back}"
    assert {"tinyml.tensor", "tinyml.ops", "tinyml._operators"} <= graph["tinyml.tensor_methods"]
    assert "tinyml.tensor_methods" in graph["tinyml"]
