"""`python -m tinyml.backends`: print the kernel matrix (see tinyml/backends/matrix.py)."""
import argparse

from .matrix import load_all_backends, markdown, table

parser = argparse.ArgumentParser(prog="python -m tinyml.backends", description="tinyml's kernel matrix")
parser.add_argument("--markdown", action="store_true", help="print docs/kernels.md (registry only)")
args = parser.parse_args()
if args.markdown:
    print(markdown(), end="")
else:
    for problem in load_all_backends():
        print(f"note: {problem}")
    print(table())
