"""tinyml.distributed.overlap: the interval arithmetic on hand-made traces (the 2-rank DDP trace is
checked in ddp_worker.py, through test_distributed.py)."""
import json

import pytest

import tinyml
from tinyml.distributed import overlap


def _x(name, cat, ts, dur):
    return {"name": name, "cat": cat, "ph": "X", "ts": ts, "dur": dur, "pid": 0, "tid": 0}


def test_overlap_of_buckets_with_backward_compute(tmp_path):
    events = [_x("MmBackward", "backward", 0, 10), _x("mm [cpu]", "kernel", 2, 5),  # a kernel: not counted
              _x("AddBackward", "backward", 12, 8),
              _x("DDP allreduce bucket 0 [mpi]", "comm", 5, 10),   # 5..15: covered 5..10 and 12..15 = 8
              _x("DDP allreduce bucket 1 [mpi]", "comm", 14, 11),  # 14..25: with bucket 0, C = 5..25 (20)
              _x("DDP wait [mpi]", "comm", 20, 5)]                 # 20..25: counted as wait only
    want = {"allreduce_us": 20.0, "overlapped_us": 13.0, "exposed_us": 7.0, "fraction": 0.65, "buckets": 2,
            "wait_us": 5.0}
    assert overlap.communication_overlap(events) == pytest.approx(want)
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": events}))
    assert overlap.communication_overlap(str(path)) == pytest.approx(want)
    assert overlap.communication_overlap({"traceEvents": events}) == pytest.approx(want)


def test_no_compute_means_nothing_hidden_and_disjoint_unions():
    events = [_x("DDP allreduce bucket 0", "comm", 0, 4), _x("DDP allreduce bucket 1", "comm", 10, 2),
              _x("SumBackward", "backward", 4, 6)]  # exactly between the two: touches, does not cover
    got = overlap.communication_overlap(events)
    assert got["allreduce_us"] == 6 and got["overlapped_us"] == 0 and got["fraction"] == 0


def test_a_profile_object_is_read_directly():
    with tinyml.profiler.profile() as prof:
        (tinyml.randn(4, 3, requires_grad=True) * 2).sum().backward()
    with pytest.raises(ValueError, match="the trace has no DDP allreduce events"):
        overlap.communication_overlap(prof)
    with pytest.raises(ValueError, match=r"needs 'traceEvents'; got keys \['events'\]"):
        overlap.communication_overlap({"events": []})
