"""tinyml.profiler.record_function and profile.key_averages() with torch's names and table columns."""
import re

import pytest

import tinyml
from tinyml import profiler


def _profile():
    x = tinyml.randn(16, 16, requires_grad=True)

    @profiler.record_function("decorated")
    def f(t):
        return (t @ t).relu().sum()

    with profiler.profile() as prof:
        with profiler.record_function("step"):
            for _ in range(2):
                f(x).backward()
    return prof


def test_record_function_nests_ops_and_counts_calls():
    prof = _profile()
    rows = {r.key: r for r in prof.key_averages()}
    assert rows["step"].count == 1 and rows["decorated"].count == 2
    assert rows["Matmul"].count >= 2 and rows["matmul [cpu]"].count >= 2  # backward runs matmuls too
    step = rows["step"]
    # the step contains everything else: its total is the sum of every self time
    assert step.cpu_time_total == pytest.approx(sum(r.self_cpu_time_total for r in rows.values()), rel=1e-9)
    assert rows["decorated"].cpu_time_total < step.cpu_time_total
    assert rows["decorated"].cpu_time == pytest.approx(rows["decorated"].cpu_time_total / 2)
    user = [e for e in prof.events if e.kind == "user"]
    assert sorted(e.name for e in user) == ["decorated", "decorated", "step"]


def test_key_averages_table_has_torch_columns_and_sorts():
    prof = _profile()
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=3)
    lines = table.splitlines()
    for col in ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg", "# of Calls"]:
        assert col in lines[1]
    assert lines[3].startswith("step") and "100.00%" in lines[3]  # the outermost block first
    assert len(lines) == 3 + 3 + 2 and re.match(r"Self CPU time total: [\d.]+(us|ms|s)$", lines[-1])
    shaped = prof.key_averages(group_by_input_shape=True)
    assert "Input Shapes" in shaped.table() and any(r.input_shapes == [[16, 16], [16, 16]] for r in shaped)
    with pytest.raises(ValueError, match="sort_by must be one of"):
        prof.key_averages().table(sort_by="cuda_time_total")


def test_record_function_outside_a_profiler_is_a_no_op():
    with profiler.record_function("nothing") as rf:
        y = tinyml.ones(2) * 2
    assert rf._span is None and y.tolist() == [2.0, 2.0]
