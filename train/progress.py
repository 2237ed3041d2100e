"""What a run shows and leaves behind: a one-line progress bar (loss, tokens/s, ETA) with a
status line for slow phases (evaluation), metrics.jsonl (one JSON object per logged step or
evaluation) and loss.png (matplotlib, a dependency of tinyml)."""
from __future__ import annotations

import json
import os
import sys
import time


def _fmt_time(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _fmt_rate(r: float) -> str:
    return f"{r / 1000:.1f}k" if r >= 1000 else f"{r:.0f}"


class ProgressBar:
    """`step 120/2000 [####......] loss 2.310 | 14.2k tok/s | ETA 3m12s` redrawn in place on a
    terminal; on a pipe or file, the same text as a plain line every `every` steps. `status`
    shows what a long phase is doing (`evaluating 37/200 batches`): in place on a terminal, and
    on a pipe at most once every `status_every_s` seconds, so a fast phase adds no lines to a log."""

    def __init__(self, total: int, stream=None, width: int = 24, every: int = 50, enabled: bool = True,
                 status_every_s: float = 10.0):
        self.total, self.width, self.every, self.enabled = total, width, every, enabled
        self.status_every_s = status_every_s
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_len = 0
        self._last_line_at = time.monotonic()

    def line(self, step: int, loss: float, tok_per_s: float, eta_s: float) -> str:
        done = int(self.width * step / max(self.total, 1))
        bar = "#" * done + "." * (self.width - done)
        return (f"step {step}/{self.total} [{bar}] loss {loss:.4f} | {_fmt_rate(tok_per_s)} tok/s | "
                f"ETA {_fmt_time(eta_s)}")

    def update(self, step: int, loss: float, tok_per_s: float, eta_s: float) -> None:
        if not self.enabled:
            return
        text = self.line(step, loss, tok_per_s, eta_s)
        if self.tty:
            self._redraw(text)
        elif step % self.every == 0 or step == self.total:
            self._write_line(text)

    def status(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self._redraw(text)
        elif time.monotonic() - self._last_line_at >= self.status_every_s:
            self._write_line(text)

    def _redraw(self, text: str) -> None:
        pad = " " * max(self._last_len - len(text), 0)
        self.stream.write("\r" + text + pad)
        self._last_len = len(text)
        self.stream.flush()

    def _write_line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last_line_at = time.monotonic()

    def message(self, text: str) -> None:
        """A line of its own (evaluations, checkpoints) that does not garble the bar."""
        if not self.enabled:
            return
        if self.tty and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self._last_len = 0
        self._write_line(text)

    def close(self) -> None:
        if self.enabled and self.tty and self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0


class MetricsLog:
    """Appends records to `path` (metrics.jsonl); on resume, drops records past the resumed step
    so the file describes one consistent run."""

    def __init__(self, path: str | None):
        self.path = path
        self.records: list[dict] = []
        if path and os.path.exists(path):
            with open(path) as f:
                self.records = [r for r in map(_parse_record, f) if r is not None]

    def truncate_after(self, step: int) -> None:
        self.records = [r for r in self.records if r.get("step", 0) <= step]
        if self.path:
            tmp = f"{self.path}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                for r in self.records:
                    f.write(json.dumps(r) + "\n")
            os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        record = {"time": round(time.time(), 3), **record}
        self.records.append(record)
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _parse_record(line: str) -> dict | None:
    # a run killed mid-write leaves a torn last line; it is dropped (and the file rewritten by
    # truncate_after on the next start) rather than making the folder unusable
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def require_matplotlib() -> None:
    """Fail at the start of a run, not at its first evaluation, when loss.png cannot be drawn."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("matplotlib is needed to draw loss.png and is not installed: "
                          "pip install matplotlib (`pip install tinyml` installs it)")


def plot_loss(records: list[dict], path: str) -> bool:
    """Train and validation loss against step as a PNG; False (and nothing written) when there is
    no loss to plot yet."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train and not val:
        return False
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation", linewidth=1.5, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return True
