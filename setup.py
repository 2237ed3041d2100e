"""Build script: the C++ extension tinyml._C and the package layout.

`models/` and `train/` live at the top of the repository (the design card) but install as
`tinyml.models` and `tinyml.train` through `package_dir`, so nothing named `models` or `train`
lands at the top of site-packages.

TINYML_NATIVE_ARCH=1 adds -march=native (off by default: wheels must run on any x86-64).
"""
import glob
import hashlib
import os
import re
import sys

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import find_packages, setup


def _packages():
    core = [p for p in find_packages(include=["tinyml", "tinyml.*"])]
    models = ["tinyml.models" + p[len("models"):] for p in find_packages(include=["models", "models.*"])]
    train = ["tinyml.train" + p[len("train"):] for p in find_packages(include=["train", "train.*"])]
    return core + models + train


def _package_dir():
    dirs = {"tinyml.models": "models", "tinyml.train": "train"}
    for top in ("models", "train"):
        for sub in find_packages(include=[f"{top}.*"]):
            dirs["tinyml." + sub] = sub.replace(".", "/")
    return dirs


# -fno-math-errno: no kernel reads errno, and without it GCC keeps a libm call in every sqrt loop
# (for the errno of a negative argument), so those loops cannot vectorise.
# It goes after -fno-fast-math, which would otherwise turn math-errno back on.
compile_args = ["-O3", "-fopenmp", "-ffast-math" if os.environ.get("TINYML_FAST_MATH") else "-fno-fast-math",
                "-fno-math-errno"]
if os.environ.get("TINYML_NATIVE_ARCH"):
    compile_args.append("-march=native")
link_args = ["-fopenmp"]
if sys.platform == "darwin":  # Apple clang needs libomp from Homebrew; build without OpenMP there
    compile_args = [a for a in compile_args if a != "-fopenmp"]
    link_args = []

_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def _local_headers(path: str, seen: set) -> set:
    """The csrc headers `path` includes, directly or through other csrc headers."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for name in _INCLUDE.findall(text):
        header = os.path.join(os.path.dirname(path), name)
        if os.path.exists(header) and header not in seen:
            seen.add(header)
            _local_headers(header, seen)
    return seen


def _needs_recompile(obj: str, src: str) -> bool:
    """Rebuild an object file only when the text of its .cpp or of a csrc header it includes changed
    since it was compiled, so editing one kernel recompiles that kernel's files, not all of csrc/.
    The text, not the mtimes: an edit made while another build compiles the file leaves an object
    newer than the edit but built from the old text. The digest is written before the compile and
    the old object removed, so a failed compile is retried by the next build."""
    files = sorted({src} | _local_headers(src, set()))
    digest = hashlib.sha1()
    for f in files:
        with open(f, "rb") as fh:
            digest.update(f.encode() + b"\0" + fh.read())
    stamp, text = obj + ".sources", digest.hexdigest()
    try:
        with open(stamp, encoding="utf-8") as fh:
            if fh.read() == text and os.path.exists(obj):
                return False
    except OSError:
        pass
    if os.path.exists(obj):
        os.remove(obj)
    os.makedirs(os.path.dirname(obj) or ".", exist_ok=True)
    with open(stamp, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


class _BuildExt(build_ext):
    """build_ext that always goes on to the per-object check (_needs_recompile): setuptools skips the
    whole extension when the .so is newer than every source, which misses an edit made while another
    build was running and linked after it. The link still runs only when an object was rebuilt."""

    def build_extension(self, ext):
        self.force = True
        super().build_extension(ext)


# Compile the kernel files in parallel (one job per core; NPY_NUM_BUILD_JOBS overrides).
ParallelCompile("NPY_NUM_BUILD_JOBS", needs_recompile=_needs_recompile).install()

ext = Pybind11Extension(
    "tinyml._C",
    sorted(glob.glob("csrc/*.cpp")),
    depends=sorted(glob.glob("csrc/*.h")),  # a changed header starts a build; _needs_recompile picks files
    include_dirs=["csrc"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    cxx_std=17,
)

setup(
    packages=_packages(),
    package_dir=_package_dir(),
    package_data={"tinyml.data": ["corpus/*"]},
    ext_modules=[ext],
    cmdclass={"build_ext": _BuildExt},
    zip_safe=False,
)
