"""The kernel registry and dispatch (tinyml/backends/__init__.py): `run`/`run_on` live there, every
kernel name is a literal at its call site, the three backends register the same way, and a cpu
kernel that declines an input (returns NotImplemented) hands it to the reference, which the debug
log, the profiler and the kernel matrix then name."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
from kernel_calls import ROOT, callers, kernel_name_args, literals, sources

import tinyml
from tinyml import backends
from tinyml.backends import matrix
from tinyml.backends.cpu import available as cpp_available

needs_C = pytest.mark.skipif(not cpp_available(), reason="tinyml._C (the C++ kernels) is not built")


# -- run / run_on belong to tinyml.backends ---------------------------------------------------------
def test_run_lives_in_backends_and_ops_use_it():
    assert importlib.util.find_spec("tinyml.ops._dispatch") is None
    assert tinyml.ops.activation.run is backends.run and tinyml.ops.creation.run_on is backends.run_on
    for path, tree in callers():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.names[0].name in ("run", "run_on"):
                assert node.module == "backends" or node.module.endswith(".backends"), (path, node.module)


def test_run_wraps_arrays_and_checks_its_arguments():
    x = tinyml.tensor([[1.0, -2.0]])
    y = backends.run("mul", x, x)
    assert isinstance(y, tinyml.Tensor) and y.tolist() == [[1.0, 4.0]]
    z = backends.run_on(tinyml.device("cpu"), "full", (2,), 3.0, np.float32)
    assert z.tolist() == [3.0, 3.0]
    with pytest.raises(TypeError, match=r"kernel 'mul' called without a tensor argument; use run_on"):
        backends.run("mul", 1.0, 2.0)


@pytest.mark.skipif(not tinyml.cuda.is_available(), reason="no cuda device or interpreter")
def test_run_names_both_devices_on_a_mismatch():
    with pytest.raises(RuntimeError, match=r"two devices, cpu and cuda:0 \(in kernel 'add'\)"):
        backends.run("add", tinyml.ones(2), tinyml.ones(2, device="cuda"))


# -- kernel names are literals at the call site ---------------------------------------------------
def test_every_kernel_is_named_by_a_literal_outside_the_backends():
    strings = set()
    for _, tree in callers():
        strings |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is str}
    missing = [name for name in matrix.registry() if name not in strings]
    assert missing == [], f"kernels no op names literally (grep finds no caller): {missing}"


def test_every_literal_kernel_name_at_a_call_site_is_registered():
    registered = set(matrix.registry())
    seen, built = [], []
    for path, tree in callers():
        for fn, arg, line in kernel_name_args(tree):
            names = literals(arg)
            for name in names or ():
                seen.append(name)
                assert name in registered, f"{path}:{line}: {fn}({name!r}) names no registered kernel"
            if names is None and not isinstance(arg, (ast.Name, ast.Attribute)):  # "gelu" + "_forward"
                built.append(f"{path}:{line}")
    assert built == [], f"kernel names built at run time (write them out): {built}"
    assert {"mul", "log_softmax_forward", "full", "adam_step"} <= set(seen)


def test_activation_and_loss_functions_name_both_kernels():
    from tinyml.ops import activation, loss

    gelu = activation.Gelu
    assert (gelu.forward_kernel, gelu.backward_kernel) == ("gelu_forward", "gelu_backward")
    assert loss.HuberLoss.backward_kernel == "huber_loss_backward"


# -- one registration mechanism -------------------------------------------------------------------
def test_every_backend_module_registers_through_all():
    matrix.load_all_backends()
    for (name, backend), module in sorted(backends._MODULES.items()):
        mod = sys.modules[module]
        assert name in mod.__all__ and getattr(mod, name) is backends._KERNELS[name][backend], (name, backend)
        assert getattr(mod, name).__name__ == name, f"{module}.{name} is named {getattr(mod, name).__name__}"
    for name, impls in backends._KERNELS.items():
        for backend in impls:
            if not backend.startswith("user"):
                assert (name, backend) in backends._MODULES, f"{backend} {name} registered outside __all__"
    for path, tree in sources("tinyml/backends/*/*.py"):
        calls = {getattr(n.func, "id", getattr(n.func, "attr", "")) for n in ast.walk(tree)
                 if isinstance(n, ast.Call)}
        assert not calls & {"add_kernel", "with_fallback"}, f"{path} registers by hand"


@needs_C
def test_cpu_kernels_are_plain_functions_named_after_their_kernel():
    from tinyml.backends.cpu import activation

    assert inspect.getsource(activation.gelu_forward).startswith("def gelu_forward(")
    assert backends.implementations("gelu_forward")["cpu"] is activation.gelu_forward


def test_register_puts_a_user_kernel_first_and_unregister_removes_it():
    calls = []

    @backends.register("relu", "cpu")
    def my_relu(x):
        calls.append(x.dtype)
        return np.maximum(x, 0)

    try:
        assert backends.backend_of("relu") == "user"
        assert tinyml.tensor([-1.0, 2.0]).relu().tolist() == [0.0, 2.0] and calls == [np.float32]
    finally:
        backends.unregister("relu", "cpu")
    assert backends.backend_of("relu") == "reference"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backends.register("relu", "tpu")


# -- declining an input: the next backend runs, and is the one reported ---------------------------
def test_a_user_kernel_that_declines_hands_over_to_the_built_in_ones():
    @backends.register("neg", "cpu")
    def neg_float64_only(x):
        return -x if x.dtype == np.float64 else NotImplemented

    try:
        with tinyml.profiler.profile() as prof:
            assert (-tinyml.tensor([1.0], dtype=tinyml.float64)).tolist() == [-1.0]
            assert (-tinyml.tensor([2.0])).tolist() == [-2.0]
        ran = [e.backend for e in prof.events if e.kind == "kernel" and e.name == "neg"]
        assert ran == ["user", "reference"]
    finally:
        backends.unregister("neg", "cpu")


def test_when_every_implementation_declines_the_error_names_the_kernel_and_inputs():
    backends.register("declines_everything", "cpu", backend="reference")(lambda x: NotImplemented)
    backends.register("declines_everything", "cpu")(lambda x: NotImplemented)
    try:
        with pytest.raises(NotImplementedError, match=r"'declines_everything' on device 'cpu': every "
                           r"implementation \(user, reference\) declined the inputs \(float16\[2, 3\]\)"):
            backends.run("declines_everything", tinyml.zeros(2, 3, dtype=tinyml.float16))
    finally:
        backends.unregister("declines_everything", "cpu")
        del backends._KERNELS["declines_everything"]
        backends.clear_cache()


@needs_C
def test_a_cpu_kernel_declines_float16_and_the_reference_runs():
    cpu = backends.implementations("gelu_forward")["cpu"]
    assert cpu(np.ones(3, np.float16), "none") is NotImplemented
    assert cpu(np.ones(3, np.float32), "none").dtype == np.float32
    with tinyml.profiler.profile() as prof:
        tinyml.nn.functional.gelu(tinyml.ones(4, 4, dtype=tinyml.float16))
        tinyml.nn.functional.gelu(tinyml.ones(4, 4))
    ran = [(e.name, e.backend) for e in prof.events if e.kind == "kernel" and e.name == "gelu_forward"]
    assert ran == [("gelu_forward", "reference"), ("gelu_forward", "cpu")]
    assert "reference" in prof.table()


@needs_C
def test_the_debug_log_names_the_backend_that_ran():
    code = ("import tinyml, tinyml.nn.functional as F; "
            "F.gelu(tinyml.ones(4, 4, dtype=tinyml.float16)); F.gelu(tinyml.ones(4, 4))")
    err = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, TINYML_DEBUG="1"),
                         capture_output=True, text=True, check=True).stderr
    lines = [ln.split()[1:3] for ln in err.splitlines() if " gelu_forward " in ln]
    assert lines == [["gelu_forward", "reference"], ["gelu_forward", "cpu"]], err


@needs_C
def test_the_kernel_matrix_status_counts_a_declined_call_for_the_reference(request):
    conftest = sys.modules["conftest"]  # tests/conftest.py records (kernel, backend) -> tests for the matrix
    assert backends._wrappers.count(conftest._record_kernel) == 1
    tinyml.nn.functional.silu(tinyml.ones(3, dtype=tinyml.float16))
    test = request.node.nodeid
    assert test in conftest._kernel_calls.get(("silu_forward", "reference"), ())
    assert test not in conftest._kernel_calls.get(("silu_forward", "cpu"), ())


# -- docs/kernels.md names the files ----------------------------------------------------------------
def test_kernels_md_names_each_implementation_file():
    reg = matrix.registry()
    for name in ("gelu_forward", "matmul", "adam_step"):
        where = matrix.files(name)
        assert set(where) == set(reg[name])
        for backend, paths in where.items():
            assert paths[0] == f"tinyml/backends/{backend}/" + paths[0].split("/")[-1]
            for path in paths:
                with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                    assert f'"{name}"' in f.read(), (name, path)  # in __all__, or the C++ binding's name
    if "cpu" in reg["gelu_forward"]:
        gelu = ["tinyml/backends/cpu/activation.py", "csrc/activation.cpp"]
        assert matrix.files("gelu_forward")["cpu"] == gelu
        assert matrix.files("matmul")["cpu"] == ["tinyml/backends/cpu/matmul.py"]  # numpy BLAS: no C++ file
