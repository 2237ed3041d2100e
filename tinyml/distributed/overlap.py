"""How much of DistributedDataParallel's gradient communication backward's compute hid, measured
from a profiler trace.

    with tinyml.profiler.profile() as prof:
        ddp_model(x, y)[1].backward()
    prof.export_chrome_trace("trace.json")
    print(tinyml.distributed.overlap.communication_overlap("trace.json"))

On one timeline (Chrome trace "X" events: ts and dur in microseconds):
    C = union of the "comm" events "DDP allreduce bucket <i>" (each bucket, launch to observed completion)
    B = union of the "backward" events (each autograd node's backward: the compute)
    overlapped = |C ∩ B|,   exposed = |C| - |C ∩ B|,   fraction = |C ∩ B| / |C|
A profile of several steps sums over them (the intervals of different steps do not meet).
"""
from __future__ import annotations

import json
import os

BUCKET_PREFIX = "DDP allreduce bucket "


def _union(intervals: list) -> list:
    """Sorted, disjoint intervals covering the same points as `intervals` ((start, end) pairs)."""
    merged: list = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1][1] = end
        else:
            merged.append([start, end])
    return merged


def _length(merged: list) -> float:
    return sum(end - start for start, end in merged)


def _intersection_length(a: list, b: list) -> float:
    """|a ∩ b| for two sorted disjoint interval lists (one sweep)."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _trace_events(trace) -> list:
    if isinstance(trace, (str, os.PathLike)):
        with open(trace) as f:
            trace = json.load(f)
    if isinstance(trace, dict):
        if "traceEvents" not in trace:
            raise ValueError(f"communication_overlap: a trace dict needs 'traceEvents'; got keys "
                             f"{sorted(trace)}")
        trace = trace["traceEvents"]
    if hasattr(trace, "events"):  # a tinyml.profiler.profile
        return [{"name": ev.name, "cat": ev.kind, "ts": ev.start * 1e6, "dur": ev.total * 1e6}
                for ev in trace.events]
    return list(trace)


def communication_overlap(trace) -> dict:
    """Overlap of DDP's bucket allreduces with backward compute in `trace`: a Chrome trace file
    (profile.export_chrome_trace), its parsed dict, its list of events, or a profile object.
    Returns allreduce_us (|C|), overlapped_us, exposed_us, fraction, buckets (events counted) and
    wait_us (time in DDP's final wait, which backward cannot cover)."""
    events = _trace_events(trace)
    comm, compute, wait = [], [], 0.0
    for ev in events:
        if ev.get("ph", "X") != "X":
            continue
        span = (float(ev["ts"]), float(ev["ts"]) + float(ev["dur"]))
        name = ev["name"].split(" [", 1)[0]  # export_chrome_trace appends " [backend]"
        if ev.get("cat") == "comm" and name.startswith(BUCKET_PREFIX):
            comm.append(span)
        elif ev.get("cat") == "comm" and name == "DDP wait":
            wait += span[1] - span[0]
        elif ev.get("cat") == "backward":
            compute.append(span)
    if not comm:
        raise ValueError("communication_overlap: the trace has no DDP allreduce events; profile a "
                         "synchronised backward of a DistributedDataParallel model (not under no_sync)")
    c, b = _union(comm), _union(compute)
    total, covered = _length(c), _intersection_length(c, b)
    return {"allreduce_us": total, "overlapped_us": covered, "exposed_us": total - covered,
            "fraction": covered / total if total > 0 else 0.0, "buckets": len(comm), "wait_us": wait}
