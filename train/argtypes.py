"""What each `tinyml` flag accepts: argparse `type=` functions, one shared mechanism for every flag.

A bad value ends at parse time as one line, `tinyml train: error: argument --steps: must be an
integer >= 1, got '0'`, with exit status 2, before any text is read or any folder is made.

    bounded_int(lo, hi)                 integers in [lo, hi] (hi None: no upper bound)
    bounded_float(lo, hi, open_lo=...)  finite floats in [lo, hi] or (lo, hi]; NaN and inf never pass
    device_name                         auto, cpu, cuda or cuda:N (N >= 0; whether it exists is checked later)
    existing_file / existing_path       --data (a file) / --ckpt (a file or folder)
    folder_to_create                    --out: not an existing file, and no file on the way to it
"""
from __future__ import annotations

import argparse
import math
import os
import re


def _describe(lo, hi, open_lo: bool = False) -> str:
    lo, hi = (f"{x:g}" if isinstance(x, float) else x for x in (lo, hi))  # "> 0", not "> 0.0"
    low = f"> {lo}" if open_lo else f">= {lo}"
    return low if hi is None else (f"in ({lo}, {hi}]" if open_lo else f"in [{lo}, {hi}]")


def bounded_int(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {_describe(lo, hi)}, got {text!r}")
        return value

    parse.__name__ = f"int {_describe(lo, hi)}"
    return parse


def bounded_float(lo: float, hi: float | None = None, open_lo: bool = False):
    """An argparse type: a finite float in [lo, hi] ((lo, hi] with open_lo)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        below = value <= lo if open_lo else value < lo
        # NaN fails every comparison, so it is named explicitly rather than slipping through
        if not math.isfinite(value) or below or (hi is not None and value > hi):
            accepted = _describe(lo, hi, open_lo)
            raise argparse.ArgumentTypeError(f"must be a finite number {accepted}, got {text!r}")
        return value

    parse.__name__ = f"float {_describe(lo, hi, open_lo)}"
    return parse


positive_int = bounded_int(1)
nonnegative_int = bounded_int(0)
seed = bounded_int(0, 2**64 - 1)  # torch.manual_seed's range on the positive side; numpy takes any >= 0
positive_float = bounded_float(0.0, open_lo=True)
nonnegative_float = bounded_float(0.0)
probability = bounded_float(0.0, 1.0, open_lo=True)  # top-p: (0, 1], as transformers and generate() accept

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_name(text: str) -> str:
    """auto, cpu, cuda or cuda:N. tinyml has one cpu device, so cpu takes no index."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def existing_file(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got ''")
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"expected a text file, got a directory: {text!r}")
    return text


def existing_path(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got ''")
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file or folder: {text!r}")
    return text


def folder_to_create(text: str) -> str:
    """A folder that exists or can be made: neither it nor any parent is an existing file."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder path, got ''")
    path = os.path.abspath(text)
    while True:
        if os.path.exists(path) and not os.path.isdir(path):
            where = "is" if path == os.path.abspath(text) else f"is inside {path}, which is"
            raise argparse.ArgumentTypeError(f"{text!r} {where} an existing file, not a folder")
        parent = os.path.dirname(path)
        if parent == path:
            return text
        path = parent
