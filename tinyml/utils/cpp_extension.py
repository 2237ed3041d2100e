"""Build a C++ kernel of your own into a Python module at run time (torch.utils.cpp_extension.load).

    ext = tinyml.utils.cpp_extension.load("bias_gelu_ext", ["bias_gelu.cpp"])
    ext.bias_gelu_forward(x, bias)

The sources are compiled with the system's C++ compiler against pybind11 and numpy's headers
(-O3, OpenMP, C++17) into a cache folder (TINYML_EXTENSIONS_DIR, default
~/.cache/tinyml/extensions), and rebuilt only when a source or the flags change. tinyml's own
csrc/common.h (argument checks that raise Python errors) is on the include path.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig


def _cache_dir() -> str:
    default = os.path.join(os.path.expanduser("~"), ".cache", "tinyml", "extensions")
    return os.environ.get("TINYML_EXTENSIONS_DIR", default)


def _include_dirs() -> list[str]:
    import pybind11

    dirs = [pybind11.get_include(), sysconfig.get_paths()["include"]]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    csrc = os.path.join(here, "csrc")  # a source checkout keeps csrc/ beside tinyml/
    if os.path.isdir(csrc):
        dirs.append(csrc)
    return dirs


def load(name: str, sources: list[str], extra_cflags: list[str] | None = None, verbose: bool = False):
    """Compile `sources` into the module `name` (which must define PYBIND11_MODULE(name, m))
    and import it. Raises RuntimeError with the compiler's output when the build fails."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("cpp_extension.load needs a C++ compiler (g++ or clang++) on PATH or in $CXX")
    sources = [os.path.abspath(s) for s in sources]
    for s in sources:
        if not os.path.isfile(s):
            raise FileNotFoundError(f"cpp_extension.load: source file {s!r} does not exist")
    flags = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-fvisibility=hidden"] + (extra_cflags or [])
    digest = hashlib.sha256()
    for s in sources:
        with open(s, "rb") as f:
            digest.update(f.read())
    digest.update(" ".join(flags + [compiler, sys.version]).encode())
    build_dir = os.path.join(_cache_dir(), f"{name}-{digest.hexdigest()[:16]}")
    target = os.path.join(build_dir, name + sysconfig.get_config_var("EXT_SUFFIX"))
    if not os.path.exists(target):
        os.makedirs(build_dir, exist_ok=True)
        cmd = [compiler, *flags, *(f"-I{d}" for d in _include_dirs()), *sources, "-o", target + ".tmp"]
        if verbose:
            print(" ".join(cmd))
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building extension {name!r} failed:\n{' '.join(cmd)}\n{result.stderr}")
        os.replace(target + ".tmp", target)  # atomic: a concurrent loader never sees half a file
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
