import json
import os
import subprocess
import sys

import tinyml


def test_profiler_records_ops_backward_and_kernels(tmp_path):
    x = tinyml.randn(8, 16, requires_grad=True)
    with tinyml.profiler.profile() as prof:
        (x * 2).softmax(-1).sum().backward()
    names = {(e.name, e.kind) for e in prof.events}
    assert ("Mul", "op") in names and ("SoftmaxBackward", "backward") in names
    assert ("softmax_forward", "kernel") in names
    for ev in prof.events:
        assert 0 <= ev.self_time <= ev.total + 1e-9
    table = prof.table(group_by_shapes=True)
    assert "softmax_forward" in table and "(8, 16)" in table
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    assert {e["ph"] for e in trace["traceEvents"]} == {"X"}
    assert any(e["name"].startswith("softmax_forward") for e in trace["traceEvents"])


def test_profiler_restores_dispatch_and_apply():
    apply_before = tinyml.autograd.Function.__dict__["apply"]
    with tinyml.profiler.profile():
        tinyml.ones(2) * 2
    assert tinyml.autograd.Function.__dict__["apply"] is apply_before
    assert not any(getattr(w, "__self__", None) is not None and isinstance(w.__self__, tinyml.profiler.profile)
                   for w in tinyml.backends._wrappers)


def test_debug_env_logs_kernel_launches():
    code = "import tinyml; (tinyml.ones(4, 4) * 3).sum()"
    env = dict(os.environ, TINYML_DEBUG="2")
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr
    line = next(ln for ln in err.splitlines() if " mul " in ln)
    assert "float32[4, 4]" in line and "GB/s" in line and "us" in line
