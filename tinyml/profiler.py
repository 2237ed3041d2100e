"""A profiler users can read: which ops and kernels ran, on which backend, with which shapes,
how often, and for how long.

    with tinyml.profiler.profile() as prof:
        loss = model(x).sum()
        loss.backward()
    print(prof.table())                       # sorted by self time
    prof.export_chrome_trace("trace.json")    # open in https://ui.perfetto.dev

Three kinds of events nest in one timeline:
  op        a Function's forward (`Function.apply`), e.g. "Mul"
  backward  a node's backward in `Tensor.backward()`, e.g. "MulBackward"
  kernel    one dispatched kernel call, e.g. "mul [cpu]", under the backend that ran it (a cpu
            kernel that declines an input is not an event: the reference that runs instead is)
  user      a `record_function("name")` block (context manager or decorator), as in torch
`tinyml.autograd.profiler` is this module too (torch.autograd.profiler.profile / record_function).
`prof.key_averages()` aggregates events by name (and input shapes) in torch's format:
`prof.key_averages().table(sort_by="cpu_time_total", row_limit=10)` prints torch's columns.
Total time of an event includes the events nested in it; self time excludes them. While
recording, the profiler swaps in a timed `Function.apply` and a kernel wrapper at dispatch; when
it stops, both are restored, so profiling costs nothing when it is off.
"""
from __future__ import annotations

import functools
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import autograd, backends


@dataclass
class Event:
    name: str
    kind: str  # "op" | "backward" | "kernel" | "user"
    backend: str
    shapes: tuple
    start: float
    end: float = 0.0
    children: float = 0.0  # total time of direct children
    bytes: int = 0
    declined: bool = False  # a kernel call that returned NotImplemented: dropped from the timeline

    @property
    def total(self) -> float:
        return self.end - self.start

    @property
    def self_time(self) -> float:
        return self.total - self.children


@dataclass
class Row:
    name: str
    kind: str
    backend: str
    shapes: str
    calls: int = 0
    self_time: float = 0.0
    total: float = 0.0
    bytes: int = 0
    extra: dict = field(default_factory=dict)


def _shape_of(x):
    shape = getattr(x, "shape", None)
    if shape is not None and hasattr(x, "dtype"):
        return tuple(shape)
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        return f"[{len(x)} arrays]"
    return None


def _nbytes(values) -> int:
    total = 0
    for v in values:
        if hasattr(v, "nbytes") and hasattr(v, "dtype"):
            total += int(v.nbytes)
        elif isinstance(v, (list, tuple)):
            total += _nbytes(v)
    return total


class profile:
    """Record ops, backward nodes and kernel calls inside a `with` block."""

    _active: profile | None = None

    def __init__(self, record_shapes: bool = True, *, enabled: bool = True):
        self.record_shapes, self.enabled = record_shapes, enabled  # enabled=False: records nothing (torch's)
        self.events: list[Event] = []
        self._stack: list[Event] = []
        self._t0 = 0.0

    # -- recording -------------------------------------------------------------------------
    @contextmanager
    def _span(self, name: str, kind: str, backend: str = "", shapes: tuple = ()):
        ev = Event(name, kind, backend, shapes, time.perf_counter())
        parent = self._stack[-1] if self._stack else None
        self._stack.append(ev)
        try:
            yield ev
        finally:
            ev.end = time.perf_counter()
            self._stack.pop()
            if not ev.declined:
                if parent is not None:
                    parent.children += ev.total
                self.events.append(ev)

    def _wrap_kernel(self, fn, name: str, backend: str):
        prof = self

        def timed(*args, **kwargs):
            shapes = tuple(s for s in map(_shape_of, args) if s is not None) if prof.record_shapes else ()
            with prof._span(name, "kernel", backend, shapes) as ev:
                out = fn(*args, **kwargs)
                ev.declined = out is NotImplemented
            ev.bytes = _nbytes(args) + _nbytes(out if isinstance(out, tuple) else (out,))
            return out

        return timed

    def __enter__(self) -> profile:
        if not self.enabled:
            return self
        if profile._active is not None:
            raise RuntimeError("a tinyml profiler is already recording; nested profiling is not supported")
        profile._active = self
        self._t0 = time.perf_counter()
        prof = self
        self._orig_apply = autograd.Function.__dict__["apply"]
        orig = self._orig_apply.__func__

        def timed_apply(cls, *args, **kwargs):
            shapes = (tuple(tuple(a.shape) for a in args if isinstance(a, autograd.Tensor))
                      if prof.record_shapes else ())
            with prof._span(cls.__name__, "op", "", shapes):
                return orig(cls, *args, **kwargs)

        autograd.Function.apply = classmethod(timed_apply)
        autograd._backward_observer = lambda name: self._span(name, "backward")
        backends._wrappers.append(self._wrap_kernel)
        backends.clear_cache()
        return self

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        autograd.Function.apply = self._orig_apply
        autograd._backward_observer = None
        backends._wrappers.remove(self._wrap_kernel)
        backends.clear_cache()
        profile._active = None

    # -- reporting -------------------------------------------------------------------------
    def rows(self, group_by_shapes: bool = True) -> list[Row]:
        """Events aggregated by (name, kind, backend[, shapes])."""
        table: dict[tuple, Row] = {}
        for ev in self.events:
            shapes = " ".join(str(s) for s in ev.shapes) if group_by_shapes else ""
            key = (ev.name, ev.kind, ev.backend, shapes)
            row = table.get(key)
            if row is None:
                row = table[key] = Row(ev.name, ev.kind, ev.backend, shapes)
            row.calls += 1
            row.self_time += ev.self_time
            row.total += ev.total
            row.bytes += ev.bytes
        return list(table.values())

    def table(self, sort_by: str = "self_time", row_limit: int = 30, group_by_shapes: bool = False,
              kinds: tuple = ("op", "backward", "kernel")) -> str:
        """A text table: name, kind, backend, calls, self and total ms, % of the profiled time."""
        rows = [r for r in self.rows(group_by_shapes) if r.kind in kinds]
        rows.sort(key=lambda r: getattr(r, sort_by), reverse=True)
        wall = sum(ev.total for ev in self.events if ev in self._top_level()) or 1e-12
        header = (f"{'name':<28} {'kind':<8} {'backend':<9} {'calls':>6} {'self ms':>9} {'total ms':>9} "
                  f"{'self %':>7}")
        if group_by_shapes:
            header += "  shapes"
        lines = [header, "-" * len(header)]
        for r in rows[:row_limit]:
            line = (f"{r.name[:28]:<28} {r.kind:<8} {r.backend:<9} {r.calls:>6} {r.self_time * 1e3:>9.3f} "
                    f"{r.total * 1e3:>9.3f} {100 * r.self_time / wall:>6.1f}%")
            if group_by_shapes:
                line += "  " + r.shapes[:60]
            lines.append(line)
        lines.append(f"profiled time {wall * 1e3:.3f} ms in {len(self.events)} events")
        return "\n".join(lines)

    def _top_level(self) -> list[Event]:
        """Events not nested in another (their totals sum to the profiled time)."""
        # communication (DDP's allreduce, kind "comm") overlaps compute without nesting in it: not a span
        spans = sorted((e for e in self.events if e.kind != "comm"), key=lambda e: (e.start, -e.end))
        top, end = [], -1.0
        for ev in spans:
            if ev.start >= end:
                top.append(ev)
                end = ev.end
        return top

    def export_chrome_trace(self, path: str) -> None:
        """Write the events as Chrome trace JSON (Perfetto and chrome://tracing open it)."""
        events = [{"name": ev.name + (f" [{ev.backend}]" if ev.backend else ""), "cat": ev.kind, "ph": "X",
                   "ts": (ev.start - self._t0) * 1e6, "dur": ev.total * 1e6, "pid": 0,
                   "tid": 1 if ev.kind == "comm" else 0,  # communication on its own track
                   "args": {"shapes": [list(s) if isinstance(s, tuple) else s for s in ev.shapes],
                            "bytes": ev.bytes}}
                  for ev in sorted(self.events, key=lambda e: e.start)]
        with open(path, "w") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)

    def __str__(self) -> str:
        return self.table()

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        """Events averaged by name (kernels as "name [backend]"), and by input shapes when asked:
        torch's `prof.key_averages()`. Times are in microseconds, as torch reports them."""
        table: dict[tuple, FunctionEventAvg] = {}
        for ev in self.events:
            key = ev.name + (f" [{ev.backend}]" if ev.backend else "")
            shapes = ([list(s) if isinstance(s, tuple) else s for s in ev.shapes]
                      if group_by_input_shape else [])
            avg = table.get((key, str(shapes)))
            if avg is None:
                avg = table[(key, str(shapes))] = FunctionEventAvg(key, input_shapes=shapes)
            avg.count += 1
            avg.cpu_time_total += ev.total * 1e6
            avg.self_cpu_time_total += ev.self_time * 1e6
        return EventList(table.values(), group_by_input_shape)


@dataclass
class FunctionEventAvg:
    """One row of key_averages: torch's field names (microseconds)."""

    key: str
    count: int = 0
    cpu_time_total: float = 0.0
    self_cpu_time_total: float = 0.0
    input_shapes: list = field(default_factory=list)

    @property
    def cpu_time(self) -> float:
        """Average total time per call (us)."""
        return self.cpu_time_total / max(self.count, 1)


def _format_us(us: float) -> str:
    """torch's time format: seconds, milliseconds or microseconds with 3 decimals."""
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


class EventList(list):
    """key_averages' result: a list of FunctionEventAvg with torch's `table`."""

    _SORT_KEYS = ("cpu_time_total", "self_cpu_time_total", "cpu_time", "count")

    def __init__(self, rows, group_by_input_shape: bool = False) -> None:
        super().__init__(rows)
        self._by_shape = group_by_input_shape

    def table(self, sort_by: str | None = None, row_limit: int = 100, max_name_column_width: int = 55,
              header: str | None = None, top_level_events_only: bool = False) -> str:
        """Columns: Name, Self CPU %, Self CPU, CPU total %, CPU total, CPU time avg, # of Calls
        (and Input Shapes when grouped by them); percentages of the summed self time."""
        rows = list(self)
        if sort_by is not None:
            if sort_by not in self._SORT_KEYS:
                raise ValueError(f"sort_by must be one of {self._SORT_KEYS} (cpu only: no cuda columns), "
                                 f"got {sort_by!r}")
            rows.sort(key=lambda r: getattr(r, sort_by), reverse=True)
        total_self = sum(r.self_cpu_time_total for r in rows) or 1e-12
        width = min(max([len(r.key) for r in rows] + [4]), max_name_column_width)
        cols = ["Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg", "# of Calls"]
        head = f"{'Name':<{width}}  " + "  ".join(f"{c:>12}" for c in cols)
        if self._by_shape:
            head += "  Input Shapes"
        rule = "-" * len(head)
        lines = ([header] if header else []) + [rule, head, rule]
        for r in rows[:row_limit]:
            name = r.key if len(r.key) <= width else r.key[:width - 3] + "..."
            cells = [f"{100 * r.self_cpu_time_total / total_self:.2f}%", _format_us(r.self_cpu_time_total),
                     f"{100 * r.cpu_time_total / total_self:.2f}%", _format_us(r.cpu_time_total),
                     _format_us(r.cpu_time), str(r.count)]
            line = f"{name:<{width}}  " + "  ".join(f"{c:>12}" for c in cells)
            if self._by_shape:
                line += f"  {r.input_shapes}"
            lines.append(line)
        lines += [rule, f"Self CPU time total: {_format_us(total_self)}"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


class record_function:
    """Mark a block as one event named `name` in the active profiler (torch.profiler.record_function):
    a context manager, or a decorator. Outside a profiler it does nothing."""

    def __init__(self, name: str, args: str | None = None) -> None:
        self.name, self.args = name, args
        self._span = None

    def __enter__(self) -> record_function:
        prof = profile._active
        if prof is not None:
            self._span = prof._span(self.name, "user")
            self._span.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._span is not None:
            span, self._span = self._span, None
            span.__exit__(*exc)

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with record_function(self.name, self.args):
                return fn(*args, **kwargs)
        return wrapper
