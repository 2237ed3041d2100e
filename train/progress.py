"""What a run shows and leaves behind: a one-line progress bar (loss, tokens/s, ETA),
metrics.jsonl (one JSON object per logged step or evaluation) and loss.png (matplotlib, if present)."""
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
    terminal; on a pipe or file, the same text as a plain line every `every` steps."""

    def __init__(self, total: int, stream=None, width: int = 24, every: int = 50, enabled: bool = True):
        self.total, self.width, self.every, self.enabled = total, width, every, enabled
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_len = 0

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
            pad = " " * max(self._last_len - len(text), 0)
            self.stream.write("\r" + text + pad)
            self._last_len = len(text)
        elif step % self.every == 0 or step == self.total:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (evaluations, checkpoints) that does not garble the bar."""
        if not self.enabled:
            return
        if self.tty and self._last_len:
            self.stream.write("\r" + " " * self._last_len + "\r")
            self._last_len = 0
        self.stream.write(text + "\n")
        self.stream.flush()

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
                self.records = [json.loads(line) for line in f if line.strip()]

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


def plot_loss(records: list[dict], path: str) -> bool:
    """Train and validation loss against step as a PNG; False (and nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return False
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
