"""The doc checker behind tests/test_docs.py: an index of what the sources define, and the rules by
which a backticked span of docs/internals.md or docs/custom_kernels.md is read.

How a backticked span is read (docs/internals.md states the same rules for its readers):
    `tinyml/autograd.py`, `csrc/`, `csrc/*.cpp`   a path from the repository root: must exist
    `tinyml.autograd.Function.apply`             module + name: defined in that module's file
    `Function.apply`, `Tensor._version`          Class.member: a member of that class (or a base), or bound
                                                 onto it at import (`Tensor.backward`: tensor_methods.py)
    `dispatch`, `_KERNELS`                       a name defined somewhere in the sources (or a string
                                                 literal there: `cuMemAlloc_v2`); `MulBackward`: class Mul
    `libcuda.so`                                 a file name: in the repository, or named by the sources
    `x.grad`, `loss.backward()`                  variable.member: the member exists on some class
    `TINYML_DEBUG=1`                             an environment variable the sources read
    `retain_graph=True`                          a keyword: a parameter of some function
    `np.broadcast_to`, `@triton.jit`, `py::...`  external names: must appear verbatim in the sources
    `.grad`, `inputs=`                           a member of some class, a parameter of some function
    `init_<family>`, `log_softmax_*`             a pattern: some name in the sources matches it
    `python -m tinyml.backends`                  the module must exist
Anything else with spaces or punctuation (`x * b`, `(2, 3)`) is an expression, not a name; the
paths, `tinyml.` names and C++ `a::b` names inside it are still checked.
"""
from __future__ import annotations

import ast
import builtins
import functools
import glob
import keyword
import os
import re

import tinyml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ("docs/internals.md", "docs/custom_kernels.md")
EXAMPLE_DIR = "examples/bias_gelu"
PY_SOURCES = ("tinyml/**/*.py", "models/**/*.py", "train/**/*.py", "examples/**/*.py", "tests/conftest.py",
              "tests/helpers.py")
CPP_SOURCES = ("csrc/*.cpp", "csrc/*.h", "examples/**/*.cpp")
EXTERNAL = {"np", "numpy", "torch", "triton", "tl", "ctypes", "tracemalloc", "pybind11", "py", "std", "os",
            "sys", "math"}
STANDARD_ENV = {"PYTHONPATH", "OMP_NUM_THREADS"}  # read by Python and OpenMP, not by tinyml's sources
BUILTIN_NAMES = set(dir(builtins)) | set(keyword.kwlist)
CHAIN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
CALL = re.compile(r"^@?([A-Za-z_][\w.]*)\((.*)\)$")
ASSIGN = re.compile(r"^([A-Za-z_]\w*)=(.*)$")
FILE_NAME = re.compile(r"[\w.-]+\.(?:py|cpp|h|so|md|json|toml|txt)")


# -- an index of what the sources define ----------------------------------------------------------
class FileIndex:
    """Names one Python file defines: top-level names, classes with their members, parameters."""

    def __init__(self, path: str):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        self.top: set[str] = set()  # defs, classes, assignments and imports at module level
        self.defined: set[str] = set()  # every def/class at any depth, and names assigned anywhere
        self.classes: dict[str, tuple[set, list]] = {}  # class -> (members, base names)
        self.params: set[str] = set()
        self.star = any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
                        for n in tree.body)
        for node in tree.body:
            self.top.update(_bound_names(node))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.defined.add(node.id)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                a = node.args
                self.params.update(x.arg for x in a.posonlyargs + a.args + a.kwonlyargs)
                self.params.update(x.arg for x in (a.vararg, a.kwarg) if x is not None)
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = (_class_members(node), [_base_name(b) for b in node.bases])


def _bound_names(node) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(node, (ast.If, ast.Try)):  # `try: import x` / `if ...: def f` at module level
        inner = node.body + node.orelse + getattr(node, "finalbody", [])
        inner += [s for h in getattr(node, "handlers", []) for s in h.body]
        return set().union(*(_bound_names(s) for s in inner)) if inner else set()
    return set()


def _class_members(cls: ast.ClassDef) -> set[str]:
    members = set()
    for item in cls.body:
        members.update(_bound_names(item))
        slots = any(isinstance(t, ast.Name) and t.id == "__slots__" for t in getattr(item, "targets", ()))
        if isinstance(item, ast.Assign) and slots:
            members.update(c.value for c in ast.walk(item.value) if isinstance(c, ast.Constant)
                           and isinstance(c.value, str))
    for node in ast.walk(cls):  # attributes the class's code assigns: self.x = ..., t.x = ...
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            members.add(node.attr)
    return members


def _base_name(node) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _files(patterns) -> list[str]:
    out = []
    for pattern in patterns:
        out += sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True))
    return out


@functools.cache
def index():
    files = {os.path.relpath(p, ROOT): FileIndex(p) for p in _files(PY_SOURCES)}
    classes: dict[str, list] = {}
    for fi in files.values():
        for name, info in fi.classes.items():
            classes.setdefault(name, []).append(info)
    cpp_text = ""
    for p in _files(CPP_SOURCES):
        with open(p, encoding="utf-8") as f:
            cpp_text += f.read() + "\n"
    cpp_code = re.sub(r"//[^\n]*|/\*.*?\*/", " ", cpp_text, flags=re.DOTALL)
    text = ""
    for p in _files(PY_SOURCES):
        with open(p, encoding="utf-8") as f:
            text += f.read() + "\n"
    return {
        "files": files,
        "classes": classes,
        "defined": set().union(*(fi.defined | fi.top for fi in files.values())),
        "members": set().union(*(m for infos in classes.values() for m, _ in infos)),
        "params": set().union(*(fi.params for fi in files.values())),
        "cpp_idents": set(re.findall(r"[A-Za-z_]\w*", cpp_code)),
        "cpp_text": cpp_text,
        "py_text": text,
    }


def _module_file(parts: list[str]) -> str | None:
    """The file of a dotted module (tinyml.models / tinyml.train live in models/ and train/)."""
    if parts[:2] == ["tinyml", "_C"] and len(parts) == 2:
        return "csrc/module.cpp"
    if len(parts) >= 2 and parts[0] == "tinyml" and parts[1] in ("models", "train"):
        parts = parts[1:]
    base = os.path.join(*parts)
    for cand in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(os.path.join(ROOT, cand)):
            return cand
    return None


def _has_member(cls: str, member: str, seen=None) -> bool:
    seen = set() if seen is None else seen
    if cls in seen:
        return False
    seen.add(cls)
    for members, bases in index()["classes"].get(cls, []):
        if member in members or any(_has_member(b, member, seen) for b in bases):
            return True
    return _bound_at_import(cls, member)


def _bound_at_import(cls: str, member: str) -> bool:
    """A method set on a public class when tinyml loads, which its class body does not show: Tensor's
    op methods, `to` and `backward`, bound by tinyml/tensor_methods.py."""
    obj = getattr(tinyml, cls, None)
    return isinstance(obj, type) and member in vars(obj)


def _known_anywhere(name: str) -> bool:
    ix = index()
    return name in ix["defined"] or name in ix["members"] or name in ix["cpp_idents"] or name in ix["params"]


def check_chain(chain: str) -> str | None:
    """None if the dotted name exists where it says, else what is wrong."""
    parts = chain.split(".")
    ix = index()
    if parts[0] == "tinyml":
        for k in range(len(parts), 0, -1):
            path = _module_file(parts[:k])
            if path is not None:
                break
        else:
            return f"`{chain}`: no module tinyml.{parts[1] if len(parts) > 1 else ''} in the repository"
        rest = parts[k:]
        if not rest:
            return None
        if path.endswith(".cpp"):
            return None if rest[0] in ix["cpp_idents"] else f"`{chain}`: {rest[0]} is not in the C++ sources"
        fi = ix["files"][path]
        if rest[0] not in fi.top and not (fi.star and _runtime_has(parts[:k], rest[0])):
            return f"`{chain}`: {path} defines no {rest[0]!r}"
        if len(rest) >= 2 and not _has_member(rest[0], rest[1]):
            return f"`{chain}`: class {rest[0]} (in {path}) has no member {rest[1]!r}"
        missing = [p for p in rest[2:] if not _known_anywhere(p)]
        return f"`{chain}`: {missing} not found" if missing else None
    if parts[0] in EXTERNAL:
        ok = chain in ix["py_text"] or chain in ix["cpp_text"]
        return None if ok else f"`{chain}`: an external name the sources never use"
    if len(parts) == 1:
        name = parts[0]
        if name in BUILTIN_NAMES or _known_anywhere(name) or _quoted_in_sources(name):
            return None
        if name.endswith("Backward") and name[:-len("Backward")] in ix["classes"]:
            return None  # a graph node's name: Context.name() is the Function's name + "Backward"
        return f"`{chain}`: defined nowhere in {', '.join(PY_SOURCES + CPP_SOURCES)}"
    head, member = parts[0], parts[1]
    if head in ix["classes"]:
        if not _has_member(head, member):
            return f"`{chain}`: class {head} has no member {member!r}"
        rest = parts[2:]
    else:  # a variable (x.grad, loss.backward, ctx.saved_tensors): the members must exist somewhere
        rest = parts[1:]
    missing = [p for p in rest if not _known_anywhere(p)]
    return f"`{chain}`: {missing} not found on any class or module" if missing else None


def _quoted_in_sources(name: str) -> bool:
    """`name` is a string literal in the Python sources (an environment variable, a driver call)."""
    text = index()["py_text"]
    return f'"{name}"' in text or f"'{name}'" in text


def _runtime_has(module_parts: list[str], name: str) -> bool:
    """For a module that re-exports with `import *` (tinyml/__init__.py): ask the imported module."""
    import importlib

    module = ".".join(module_parts)
    return module.startswith("tinyml") and hasattr(importlib.import_module(module), name)


def _closes_at_end(s: str, open_at: int) -> bool:
    """The parenthesis opened at `open_at` closes at the end of s: `f(a, g(b))`, not `f(h) = g(x)`."""
    depth = 0
    for i in range(open_at, len(s)):
        depth += {"(": 1, ")": -1}.get(s[i], 0)
        if depth == 0:
            return i == len(s) - 1
    return False


def _check_cpp(name: str) -> str | None:
    return None if name in index()["cpp_text"] else f"`{name}`: not in the C++ sources"


def _check_path(path: str) -> str | None:
    path = path.strip("'\".,;:()")
    full = os.path.join(ROOT, path)
    if "*" in path:
        return None if glob.glob(full, recursive=True) else f"`{path}`: matches no file"
    if path.endswith("/"):
        return None if os.path.isdir(full) else f"`{path}`: no such folder"
    return None if os.path.exists(full) else f"`{path}`: no such file"


def check_span(span: str) -> str | None:
    """Check one backticked span from a doc; returns an error message or None."""
    s = span.strip()
    if s.startswith("python -m "):
        module = s.split()[2]
        if _module_file(module.split(".")) is None:
            return f"`{s}`: no module {module}"
        return None
    if s.startswith("#"):  # a preprocessor line: quoted from the C++ sources
        return None if s in index()["cpp_text"] else f"`{s}`: not in the C++ sources"
    m = CALL.match(s)
    if m and _closes_at_end(s, m.start(2) - 1):
        return check_chain(m.group(1))
    if re.search(r"\s", s):  # an expression or a command: check the paths and C++ names in it
        errors = [_check_path(tok) for tok in s.split() if "/" in tok and "://" not in tok and not
                  tok.startswith(("-", "/", "~"))]
        errors += [_check_cpp(name) for name in re.findall(r"\w+(?:::\w+)+", s)]
        errors += [check_chain(chain) for chain in re.findall(r"(?<![\w.])tinyml(?:\.\w+)+", s)]
        return next((e for e in errors if e), None)
    if "::" in s:
        return _check_cpp(s)
    if s.startswith("~/"):  # a path in the user's home, outside the repository
        return None
    if "/" in s and "://" not in s:
        return _check_path(s)
    if FILE_NAME.fullmatch(s):  # a file named without its folder: in the repository, or named by the sources
        found = glob.glob(os.path.join(ROOT, "**", s), recursive=True) or s in index()["py_text"]
        return None if found else f"`{s}`: no such file, and the sources never name it"
    m = ASSIGN.match(s)
    if m:
        name = m.group(1)
        if name.isupper():
            read = name in STANDARD_ENV or _quoted_in_sources(name)
            return None if read else f"`{s}`: the sources never read {name}"
        # a keyword, or an attribute in a repr
        known = name in index()["params"] or name in index()["members"]
        return None if known else f"`{s}`: no function takes a parameter {name!r}"
    s = s.removeprefix("@")
    s = s.removesuffix("()")
    if CHAIN.fullmatch(s):
        return check_chain(s)
    if s.startswith(".") and CHAIN.fullmatch(s[1:]):  # `.grad`, `.sum()`: a member of some class
        missing = [p for p in s[1:].split(".") if not _known_anywhere(p)]
        return f"`{span}`: {missing} not found on any class or module" if missing else None
    # a pattern: `init_<family>`, `log_softmax_*`
    if re.fullmatch(r"(?:\w|<\w+>|\*)+", s) and re.search(r"\w", s):
        pattern = re.compile(re.sub(r"<\w+>", r"\\w+", s).replace("*", r"\w*"))
        ix = index()
        names = ix["defined"] | ix["members"] | ix["cpp_idents"]
        matched = any(pattern.fullmatch(n) for n in names)
        return None if matched else f"`{span}`: no name in the sources matches"
    return None  # a literal or an expression ("cpu", (2, 3), -1)


# -- reading the docs -------------------------------------------------------------------------------
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)


def read(doc: str) -> str:
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
        return f.read()


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def inline_spans(text: str) -> list[str]:
    prose = FENCE.sub("", text)
    return re.findall(r"`([^`\n]+)`", prose)
