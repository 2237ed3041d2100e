"""Build script: the C++ extension tinyml._C and the package layout.

`models/` and `train/` live at the top of the repository (the design card) but install as
`tinyml.models` and `tinyml.train` through `package_dir`, so nothing named `models` or `train`
lands at the top of site-packages.

TINYML_NATIVE_ARCH=1 adds -march=native (off by default: wheels must run on any x86-64).
"""
import glob
import os
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

# Compile the kernel files in parallel (one job per core; NPY_NUM_BUILD_JOBS overrides).
ParallelCompile("NPY_NUM_BUILD_JOBS").install()

ext = Pybind11Extension(
    "tinyml._C",
    sorted(glob.glob("csrc/*.cpp")),
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
    cmdclass={"build_ext": build_ext},
    zip_safe=False,
)
