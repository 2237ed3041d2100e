"""Mix Distillation (Li et al. 2025, "Small Models Struggle to Learn from Strong Reasoners"): train a
small student on a mix of long and short reasoning traces, long:short = 1:4 by default, instead of on
the long traces alone.

    data = mix_traces(long_pairs, short_pairs, ratio="1:4", seed=0)   # 20% long, 80% short

`long_pairs[i]` and `short_pairs[i]` are two (prompt, completion) traces of the same problem; the
mix keeps each problem once, with its long trace for round(n * l / (l + s)) problems drawn at random
and its short trace for the rest. On the arithmetic task (`arithmetic_traces`) the long trace is the
detailed scratchpad and the short one the plain or reversed answer, both after the same prompt, so
the student meets one question and decides itself how much to write; `parse_trace` reads the
answer from either. examples/arithmetic/mix_distillation.py runs mix vs long-only vs short-only.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from . import arithmetic as ar


def parse_ratio(ratio) -> tuple[float, float]:
    """(long, short) from "1:4", (1, 4) or a number r (= r:1); both must be finite and > 0."""
    given = ratio
    if isinstance(ratio, str):
        parts = ratio.split(":")
        try:
            ratio = tuple(float(p) for p in parts) if len(parts) == 2 else None
        except ValueError:
            ratio = None
    elif isinstance(ratio, (int, float)) and not isinstance(ratio, bool):
        ratio = (float(ratio), 1.0)
    elif isinstance(ratio, (tuple, list)) and len(ratio) == 2:
        ratio = tuple(float(p) for p in ratio)
    else:
        ratio = None
    if ratio is None or not all(math.isfinite(p) and p > 0 for p in ratio):
        raise ValueError(f"mix ratio must be long:short with both parts positive (e.g. 1:4), got {given!r}")
    return ratio


def mix_traces(long: Sequence[tuple[str, str]], short: Sequence[tuple[str, str]], ratio="1:4",
               seed: int = 0) -> list[tuple[str, str]]:
    """One trace per problem, long for a fraction l / (l + s) of them (rounded), shuffled."""
    l_part, s_part = parse_ratio(ratio)
    if len(long) != len(short):
        raise ValueError(f"long and short traces must cover the same problems, got {len(long)} long and "
                         f"{len(short)} short")
    n = len(long)
    n_long = round(n * l_part / (l_part + s_part))
    rng = np.random.default_rng(seed)
    is_long = np.zeros(n, dtype=bool)
    is_long[rng.choice(n, size=n_long, replace=False)] = True
    order = rng.permutation(n)
    return [long[i] if is_long[i] else short[i] for i in order]


def arithmetic_traces(problems: Sequence[tuple[int, int]], short_fmt: str = "plain"):
    """(long, short) traces of additions after one shared prompt "Input:\\na+b\\nTarget:\\n": long is
    the detailed scratchpad, short the plain answer ("495;") or the reversed one ("594$;")."""
    if short_fmt not in ("plain", "reverse"):
        raise ValueError(f"the short trace is plain or reverse, got {short_fmt!r}")
    long, short = [], []
    for a, b in problems:
        prompt, detailed = ar.render(a, b, "add", "detailed")
        long.append((prompt, detailed))
        short.append((prompt, ar.render(a, b, "add", short_fmt)[1]))
    return long, short


def parse_trace(completion: str, short_fmt: str = "plain") -> str:
    """The answer of a long (scratchpad) or short completion."""
    text = completion.split(ar.EOS)[0]
    return ar.parse_answer(text, "detailed" if "<scratch>" in text else short_fmt)
