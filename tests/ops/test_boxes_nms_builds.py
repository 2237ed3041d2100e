"""csrc/boxes_nms.h, the NMS and merging kernels, as each build a machine may run compiles them: the
runtime-dispatched clones (AVX-512 here when the CPU has it; the extension runs these), AVX2+FMA and
baseline x86-64 (SSE2), through tests/ops/boxes_nms_check.cpp, against the numpy reference
(tinyml/backends/reference/boxes.py) on the cases of boxes_nms_cases.py: every threshold, both
metrics, inclusive and exclusive NMS, greedy and transitive merging; equal results, not close ones."""
import functools
import os
import subprocess

import numpy as np
import pytest
from boxes_nms_cases import nms_cases
from native_builds import COMPILER, ROOT, cpu_has, needs_native_x86

from tinyml.backends.reference.boxes import nmm_forward, nms_forward

CHECK = os.path.join(ROOT, "tests", "ops", "boxes_nms_check.cpp")
BUILDS = {"dispatched": [], "avx2": ["-DTINYML_NO_CLONES", "-mavx2", "-mfma"],
          "x86-64": ["-DTINYML_NO_CLONES"]}


def _numbers(a) -> str:
    return " ".join(float(v).hex() for v in np.asarray(a, np.float64).ravel())


@functools.lru_cache(maxsize=1)
def _cases():
    """(the driver's input, the expected lines, a label per line)."""
    text, want, labels = [], [], []
    for name, boxes, scores, thresholds in nms_cases(0):
        dt = "f32" if boxes.dtype == np.float32 else "f64"
        n = len(boxes)
        order = np.argsort(-scores, kind="stable").astype(np.int64)
        body = _numbers(boxes)
        for thr in thresholds:
            t = float(boxes.dtype.type(thr))
            for metric in ("iou", "ios"):
                for inclusive in (0, 1):
                    text.append(f"nms {dt} {n} {t.hex()} {metric} {inclusive}\n{body}\n{_numbers(order)}\n")
                    want.append(" ".join(map(str, nms_forward(boxes, order, t, metric, bool(inclusive)))))
                    labels.append(f"{name} {dt} nms t={thr} {metric} inclusive={inclusive}")
                for greedy in (0, 1):
                    text.append(f"nmm {dt} {n} {t.hex()} {metric} {greedy}\n{body}\n{_numbers(scores)}\n"
                                f"{_numbers(order)}\n")
                    owner, claim = nmm_forward(boxes, scores, order, t, metric, bool(greedy))
                    want.append(" ".join(map(str, owner)) + " | " + " ".join(map(str, claim)))
                    labels.append(f"{name} {dt} nmm t={thr} {metric} greedy={greedy}")
    return "".join(text), want, labels


@needs_native_x86
@pytest.mark.parametrize("build", list(BUILDS))
def test_boxes_nms_builds_equal_reference(build, tmp_path):
    if build == "avx2" and not cpu_has("avx2", "fma"):
        pytest.skip("the CPU has no AVX2+FMA")
    exe = tmp_path / "boxes_nms_check"
    # -std=c++17 as setup.py builds the extension: no FMA contraction, so results equal the reference's
    subprocess.run([COMPILER, "-O3", "-std=c++17", "-fno-math-errno", "-I" + os.path.join(ROOT, "csrc"),
                    *BUILDS[build], CHECK, "-o", str(exe)], check=True, capture_output=True)
    text, want, labels = _cases()
    run = subprocess.run([str(exe)], input=text, check=True, capture_output=True, text=True)
    got = run.stdout.splitlines()
    assert len(got) == len(want)
    wrong = [f"{label}: got {g!r}, want {w!r}" for label, g, w in zip(labels, got, want) if g.strip() != w]
    assert not wrong, f"{build}: {len(wrong)} of {len(want)} cases differ, first: {wrong[0]}"
