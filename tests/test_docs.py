"""The docs cannot rot: every file and code name docs/internals.md and docs/custom_kernels.md cite
must exist, custom_kernels.md's code must be verbatim from examples/bias_gelu/, and the program in
internals.md must still dispatch the kernels its log shows. How a span is read: tests/doc_checker.py.
"""
from __future__ import annotations

import os
import re

import pytest
from doc_checker import (
    DOCS,
    EXAMPLE_DIR,
    ROOT,
    _check_path,
    _files,
    check_chain,
    check_span,
    fenced_blocks,
    inline_spans,
    read,
)

import tinyml


# -- the tests ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc", DOCS)
def test_every_cited_file_and_name_exists(doc):
    spans = inline_spans(read(doc))
    assert len(spans) > 30, f"{doc} cites almost nothing: the parser is broken"
    errors = sorted({e for e in map(check_span, spans) if e})
    assert not errors, f"{doc} cites what the code no longer has:\n" + "\n".join(errors)


def test_names_in_the_diagrams_exist():
    """Paths and called names (`dispatch(`) in internals.md's text blocks (the map, the graph)."""
    errors = []
    for tag, body in fenced_blocks(read("docs/internals.md")):
        if tag != "text" or "[tinyml]" in body:
            continue
        for path in re.findall(r"[\w.*-]+(?:/[\w.*-]*)+", body):
            errors.append(_check_path(path))
        for chain in re.findall(r"(?<![\w.])([A-Za-z_][\w.]*)\(", body):
            errors.append(check_chain(chain))
    errors = [e for e in errors if e]
    assert not errors, "docs/internals.md diagrams cite what the code no longer has:\n" + "\n".join(errors)


@pytest.mark.parametrize("span, fragment", [
    ("`Function.apply_bogus`", "has no member"),
    ("`Tensor.no_such_method`", "has no member"),
    ("`tinyml.autograd.no_such_function`", "defines no"),
    ("`tinyml.no_such_module.thing`", "defines no"),
    ("`no_such_kernel_helper_xyz`", "defined nowhere"),
    ("`tinyml/no_such_file.py`", "no such file"),
    ("`tinyml/no_such_folder/`", "no such folder"),
    ("`TINYML_NO_SUCH_VARIABLE=1`", "never read"),
    ("`no_such_keyword=True`", "no function takes"),
    ("`np.no_such_numpy_function`", "external name"),
    ("`python -m tinyml.no_such_module`", "no module"),
    ("`python examples/no_such/example.py --quick`", "no such file"),
    ("`NoSuchOpBackward`", "defined nowhere"),
    ("`libno_such_library.so`", "no such file"),
    ("`y = tinyml::no_such_helper(x)`", "not in the C++ sources"),
    ("`with tinyml.profiler.no_such_profiler() as p:`", "defines no"),
    ("`.no_such_member`", "not found"),
    ("`no_such_prefix_<family>`", "no name in the sources matches"),
])
def test_the_checker_catches_a_bogus_citation(span, fragment):
    error = check_span(span.strip("`"))
    assert error is not None and fragment in error, error


@pytest.mark.parametrize("span", ["Function.apply", "tinyml.autograd.Function.apply", "Tensor._version",
                                  "TensorOperators.__mul__", "Tensor.backward", "Tensor.__init__",
                                  "tinyml/backends/reference/", "csrc/*.cpp",
                                  "TINYML_KERNELS=reference", "retain_graph=True", "loss.backward()",
                                  "tinyml::check_array", "tinyml.backends.register", "python -m "
                                                                                     "tinyml.backends",
                                  "run(\"mul\", a, b)", "@triton.jit", "tinyml.utils.cpp_extension.load",
                                  "init_<family>", "log_softmax_*", ".grad", "inputs="])
def test_the_checker_accepts_real_citations(span):
    assert check_span(span) is None


def test_custom_kernels_code_is_verbatim_from_the_example():
    examples = {}
    for path in _files((EXAMPLE_DIR + "/*.py", EXAMPLE_DIR + "/*.cpp")):
        with open(path, encoding="utf-8") as f:
            examples[os.path.relpath(path, ROOT)] = f.read()
    blocks = [(tag, body) for tag, body in fenced_blocks(read("docs/custom_kernels.md"))
              if tag in ("python", "cpp")]
    assert len(blocks) >= 6
    used = set()
    for tag, body in blocks:
        homes = [p for p, text in examples.items() if body.rstrip("\n") in text]
        assert homes, f"this {tag} block of docs/custom_kernels.md is not verbatim in {EXAMPLE_DIR}/:\n{body}"
        used.update(homes)
    assert used == set(examples), f"example files the guide never shows: {sorted(set(examples) - used)}"


LOG_LINE = re.compile(r"\[tinyml\] (\S+)\s+(\S+)\s+[\d.]+ us\s*(.*)$")


def test_internals_log_has_the_format_tinyml_debug_prints(capsys):
    import numpy as np

    from tinyml.debug import _make_wrapper

    _make_wrapper(1)(lambda a, b: a, "mul", "reference")(np.ones((2, 3), np.float32), 2.0)
    line = capsys.readouterr().err.strip()
    m = LOG_LINE.match(line)
    assert m and m.groups() == ("mul", "reference", "float32[2, 3]"), line


def test_internals_program_dispatches_the_kernels_its_log_shows():
    """Run the program of internals.md and compare its kernel calls with the documented log."""
    from tinyml import backends
    from tinyml.debug import _describe

    text = read("docs/internals.md")
    programs = [body for tag, body in fenced_blocks(text) if tag == "python"]
    logs = [body for tag, body in fenced_blocks(text) if tag == "text" and "[tinyml]" in body]
    assert len(programs) == 1 and len(logs) == 1
    documented = []
    for line in logs[0].splitlines():
        m = LOG_LINE.match(line)
        assert m, f"unreadable log line in docs/internals.md: {line!r}"
        documented.append((m.group(1), m.group(2), m.group(3).strip()))

    calls = []

    def record(fn, name, backend):
        def recorded(*args, **kwargs):
            calls.append((name, backend, _describe(args)))
            return fn(*args, **kwargs)
        return recorded

    with backends.force_reference(False):
        backends._wrappers.append(record)
        backends.clear_cache()
        try:
            exec(compile(programs[0], "docs/internals.md", "exec"), {})  # noqa: S102  (the doc's own program)
        finally:
            backends._wrappers.remove(record)
            backends.clear_cache()
    if not tinyml.backends.cpu.available():  # without tinyml._C the C++ lines run on the reference
        documented = [(n, "reference" if b == "cpu" else b, s) for n, b, s in documented]
    assert calls == documented


def test_internals_graph_and_saved_bytes_are_what_the_page_says():
    """The graph drawn after the program's forward line and the saved-bytes figure of section 9."""
    text = read("docs/internals.md")
    program = next(body for tag, body in fenced_blocks(text) if tag == "python")
    forward = "\n".join(line for line in program.splitlines() if line.strip() != "loss.backward()")
    graph = next(body for tag, body in fenced_blocks(text) if tag == "text" and "(leaf)" in body)
    m = re.search(r"before `loss.backward\(\)`, it is (\d+) bytes", re.sub(r"\s+", " ", text))
    assert m, "docs/internals.md no longer states the saved bytes of its program"
    ns: dict = {}
    exec(compile(forward, "docs/internals.md", "exec"), ns)  # noqa: S102  (the doc's own program)
    loss = ns["loss"]
    dot = tinyml.viz.graph(loss)
    assert set(re.findall(r'label="(\w+Backward)', dot)) == set(re.findall(r"\w+Backward", graph))
    assert tinyml.memory.saved_bytes(loss) == int(m.group(1))
    loss.backward()
    assert tinyml.memory.saved_bytes(loss) == 0

