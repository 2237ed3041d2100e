"""How long `import tinyml` takes, beside `import torch` and `import numpy`, each in a fresh interpreter.

    python3 bench/import_time.py [--repeats 7]

A benchmark, not a test (timings fail on a busy machine). Each import runs in a new process so
that nothing is cached in sys.modules; reported: the median and best wall time over the repeats,
and the ratio torch / tinyml (>1: tinyml imports faster). `-X importtime` on the slowest run
shows what dominates. The goal is under 0.5 s on a quiet machine; ml_dtypes (0.55 s to import in
release 0.7.0) loads only when a bfloat16 array is first made.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def time_import(module: str, repeats: int) -> list[float] | None:
    times = []
    for _ in range(repeats):
        r = subprocess.run([sys.executable, "-c", CODE.format(mod=module)], capture_output=True, text=True)
        if r.returncode != 0:
            return None  # not installed
        times.append(float(r.stdout.split()[-1]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = {m: time_import(m, args.repeats) for m in ("numpy", "tinyml", "torch")}
    print(f"{'module':<8} {'median s':>9} {'best s':>8}")
    for module, times in results.items():
        if times is None:
            print(f"{module:<8} {'not installed':>18}")
            continue
        print(f"{module:<8} {statistics.median(times):>9.3f} {min(times):>8.3f}")
    if results["tinyml"] and results["torch"]:
        print(f"ratio torch / tinyml (median): {statistics.median(results['torch']) / statistics.median(results['tinyml']):.2f}")


if __name__ == "__main__":
    main()
