"""TinyGSM's generator side: the tokenizer, the (question -> solution) texts a small GPT learns,
sampling N solutions per problem with the KV cache, and executing them in the sandbox.

    tok = train_tokenizer(train_problems, vocab_size=512)     # byte-level BPE, digits one by one
    prompt, completion = as_pair(problem, tok)                # question + "\\n", solution + EOS
    codes = sample_solutions(model, tok, problems, n=16, temperature=0.8, seed=0)   # [[code] * n]
    answers = execute(unique codes)                           # sandbox, one process per program

The tokenizer is tinyml.data.BPETokenizer over a `tokenizers` BPE whose pre-tokenizer splits every
digit into its own token before the byte-level step (as Llama's and GPT-4's tokenizers do for
numbers): the generator copies numbers digit by digit, so numbers outside the training range
(the held-out split) are made of tokens it has seen.

Correctness is `same_answer(executed, gold)`: equal numbers (within 1e-6 relative, for the
float answers of the percent and average templates), or equal non-numeric values.
"""
from __future__ import annotations

import ast
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from tinyml.models import generate

import tinyml
from tinyml.data import BPETokenizer

from .sandbox import run_python
from .tinygsm import Problem

EOS = "<|endoftext|>"


def train_tokenizer(problems: Sequence[Problem], vocab_size: int = 512) -> BPETokenizer:
    """Byte-level BPE learned on the problems' questions and solutions, digits split one per token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    lo, hi = BPETokenizer.vocab_size_range((EOS,))
    if not lo <= vocab_size <= hi:
        raise ValueError(f"vocab_size {vocab_size}: byte-level BPE takes {lo} to {hi}")
    if not problems:
        raise ValueError("train_tokenizer: no problems to learn merges from")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([p.question + "\n" + p.solution for p in problems], trainer=trainer)
    return BPETokenizer(tok)


def prompt_of(problem: Problem) -> str:
    return problem.question + "\n"


def as_pair(problem: Problem) -> tuple[str, str]:
    """(prompt, completion): the question on its own line, then the solution function and EOS."""
    return prompt_of(problem), problem.solution + EOS


def strip_eos(text: str) -> str:
    return text.split(EOS)[0]


def sample_solutions(model, tok: BPETokenizer, problems: Sequence[Problem], n: int, temperature: float,
                     max_new_tokens: int, seed: int = 0, rows_per_batch: int = 512,
                     on_batch=None, top_p: float | None = None) -> list[list[str]]:
    """n completions per problem (temperature 0: greedy, and then n = 1 suffices), cut at EOS;
    top_p < 1 samples from the nucleus (the fewest tokens whose probability sums to top_p).
    Problems whose prompts have equal token lengths are decoded together (n rows each), with the
    KV cache. The tinyml random stream is reseeded from `seed` and restored afterwards."""
    if n < 1 or temperature < 0 or not math.isfinite(temperature) or not (top_p is None or 0 < top_p <= 1):
        raise ValueError(f"sample_solutions: need n >= 1, a finite temperature >= 0 and top_p in (0, 1], got "
                         f"n={n}, temperature={temperature}, top_p={top_p}")
    eos = tok.token_to_id(EOS)
    encoded = [tok.encode(prompt_of(p)) for p in problems]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    out: list[list[str]] = [[] for _ in problems]
    saved = tinyml.random.get_rng_state()
    tinyml.manual_seed(seed)
    per_batch = max(1, rows_per_batch // n)
    done = 0
    try:
        for length, idx in sorted(by_length.items()):
            for start in range(0, len(idx), per_batch):
                chunk = idx[start:start + per_batch]
                prompts = np.repeat(np.asarray([encoded[i] for i in chunk], dtype=np.int64), n, axis=0)
                rows = generate(model, prompts, max_new_tokens, temperature=temperature, stop_tokens=[eos],
                                top_p=None if top_p is None or top_p >= 1 else top_p)
                for j, row in enumerate(rows):
                    out[chunk[j // n]].append(strip_eos(tok.decode(row[length:])))
                done += len(chunk)
                if on_batch is not None:
                    on_batch(done, len(problems))
    finally:  # sampling must not move the training run's random stream
        tinyml.random.set_rng_state(saved)
    return out


def execute(codes: Sequence[str], workers: int = 4, timeout: float = 3.0) -> dict[str, object]:
    """{code: its answer, or None when it failed (syntax, error, timeout, ...)} for each distinct
    program, each in its own sandboxed process (`workers` at a time)."""
    distinct = list(dict.fromkeys(codes))

    def one(code: str):
        result = run_python(code, timeout=timeout, cpu_seconds=1, memory_mb=128, max_output=1000)
        return result.answer if result.ok else None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        answers = list(pool.map(one, distinct))
    return dict(zip(distinct, answers))


def _lone_solution(code: str) -> bool:
    """Whether the code parses to exactly one top-level `def solution():` (parsing runs nothing)."""
    try:
        body = ast.parse(code).body
    except (SyntaxError, ValueError):
        return False
    return len(body) == 1 and isinstance(body[0], ast.FunctionDef) and body[0].name == "solution"


def execute_many(codes: Sequence[str], chunk: int = 200, workers: int = 4) -> dict[str, object]:
    """execute() for many short programs of our own making (gold solutions and their miscopied
    copies): up to `chunk` per sandboxed process, each called through a guard so that one that
    raises gives None and the rest still answer. A program that is not a lone `def solution():`,
    or a chunk whose process fails as a whole (a timeout, the CPU limit), goes through execute(),
    one process per program. Syntax errors give None without a process."""
    distinct = list(dict.fromkeys(codes))
    lone = [c for c in distinct if _lone_solution(c)]
    out: dict[str, object] = {c: None for c in distinct}
    chunked = set(lone)
    alone = [c for c in distinct if c not in chunked and _parses(c)]
    for start in range(0, len(lone), chunk):
        part = lone[start:start + chunk]
        program = "".join(c.replace("def solution", f"def solution_{i}", 1) for i, c in enumerate(part))
        program += ("def guarded(f):\n    try:\n        return f()\n    except Exception:\n"
                    "        return None\n")
        calls = ", ".join(f"guarded(solution_{i})" for i in range(len(part)))
        program += f"def solution():\n    return [{calls}]\n"
        result = run_python(program, timeout=30.0, cpu_seconds=20, max_output=1000 + 60 * len(part))
        if result.ok and isinstance(result.answer, list) and len(result.answer) == len(part):
            out.update(zip(part, result.answer))
        else:
            alone += part
    out.update(execute(alone, workers=workers))
    return out


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _number(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def same_answer(answer, gold) -> bool:
    """Whether an executed answer equals the gold one (numbers within 1e-6 relative)."""
    if answer is None:
        return False
    a, g = _number(answer), _number(gold)
    if a is None or g is None:
        return a is None and g is None and answer == gold
    return math.isfinite(a) and abs(a - g) <= 1e-6 * max(1.0, abs(g))
