"""Teaching Arithmetic (Lee et al. 2023, "Teaching Arithmetic to Small Transformers"): n-digit
addition (subtraction and multiplication as options) written in the paper's four data formats,
with sampling balanced over digit counts and carries, and a held-out test set that never
overlaps the training problems.

The four formats, for 128 + 367 (the prompt is what the model is given, the completion what it
must write; `EOS` = ";" ends every sample):

    plain                 128+367=|495
    reverse               $128+367=|594$              (the answer's digits least significant first)
    simplified scratchpad Input:\\n128+367\\nTarget:\\n|A->5 , C->1\\nA->9 , C->0\\nA->4 , C->0.\\n495
    detailed scratchpad   Input:\\n128+367\\nTarget:\\n|<scratch>
                          [1,2,8] has 3 digits.
                          [3,6,7] has 3 digits.
                          [1,2,8] + [3,6,7] , A=[] , C=0 , 8+7+0=15 , A->5 , C->1
                          [1,2] + [3,6] , A=[5] , C=1 , 2+6+1=9 , A->9 , C->0
                          [1] + [3] , A=[9,5] , C=0 , 1+3+0=4 , A->4 , C->0
                          [] + [] , A=[4,9,5] C=0 , END
                          </scratch>
                          4 9 5

In the scratchpads each line handles one digit position from the least significant: A is the
digit written, C the carry out (a_i + b_i + c_in = 10 C + A). The scratchpads exist for addition
only (as in the paper's main experiments); subtraction (a - b with a >= b) and multiplication
take plain or reverse.

Balanced sampling (the paper's "balanced data"): the longer operand's digit count d is uniform
in 1..n, the other operand's in 1..d (order random); for addition the number of carries is
uniform over 0..d (the positions that carry drawn at random, digits then drawn to match), since
uniform operands rarely produce the many-carry cases. Training problems may repeat (there are
only 100 one-digit additions) but none is a test problem.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyml.data import CharTokenizer

FORMATS = ("plain", "reverse", "simple", "detailed")
OPERATIONS = {"add": "+", "sub": "-", "mul": "*"}
EOS = ";"
# every character any format writes, plus EOS: the task's whole alphabet
ALPHABET = sorted(set("0123456789+-*=$\n ,.[]<>/:" "Input: Target: <scratch> has digits. END A-> C->" + EOS))


def tokenizer() -> CharTokenizer:
    """The character tokenizer over the task's alphabet (the same ids for every format)."""
    return CharTokenizer(ALPHABET)


def _digits(x: int) -> list[int]:
    return [int(c) for c in str(x)]


def _list(ds) -> str:
    return "[" + ",".join(str(d) for d in ds) + "]"


def simplified_scratchpad(a: int, b: int) -> str:
    """The per-position digit and carry lines of a + b, then the sum."""
    da, db = _digits(a)[::-1], _digits(b)[::-1]
    lines, carry = [], 0
    for i in range(max(len(da), len(db))):
        s = (da[i] if i < len(da) else 0) + (db[i] if i < len(db) else 0) + carry
        carry = s // 10
        lines.append(f"A->{s % 10} , C->{carry}")
    return "\n".join(lines) + f".\n{a + b}"


def detailed_scratchpad(a: int, b: int) -> str:
    """The paper's detailed scratchpad of a + b: operand lengths, then for each position the digits
    left, the answer so far, the carry, the digit sum and what it writes; then the spaced sum."""
    ra, rb = _digits(a), _digits(b)
    lines = ["<scratch>", f"{_list(ra)} has {len(ra)} digits.", f"{_list(rb)} has {len(rb)} digits."]
    answer, carry = [], 0
    while ra or rb:
        x, y = (ra[-1] if ra else 0), (rb[-1] if rb else 0)
        s = x + y + carry
        lines.append(f"{_list(ra)} + {_list(rb)} , A={_list(answer)} , C={carry} , {x}+{y}+{carry}={s} , "
                     f"A->{s % 10} , C->{s // 10}")
        answer.insert(0, s % 10)
        carry, ra, rb = s // 10, ra[:-1], rb[:-1]
    if carry:
        answer.insert(0, carry)
    lines += [f"[] + [] , A={_list(answer)} C={carry} , END", "</scratch>", " ".join(str(a + b))]
    return "\n".join(lines)


def answer_width(digits: int, op: str) -> int:
    """Digits of the largest answer of two `digits`-digit operands: the padded answer's width."""
    return {"add": digits + 1, "sub": digits, "mul": 2 * digits}[op]


def render(a: int, b: int, op: str = "add", fmt: str = "plain", pad: int = 0) -> tuple[str, str]:
    """(prompt, completion) of the problem `a op b` in format `fmt`; completion ends with EOS.
    pad > 0 (plain and reverse only) writes the operands with leading zeros to `pad` digits and the
    answer to answer_width(pad, op) digits, so every digit position is at a fixed offset:
    $128+067=5910$ for 128 + 67 with pad=3."""
    check_task(op, fmt)
    sign = OPERATIONS[op]
    value = {"add": a + b, "sub": a - b, "mul": a * b}[op]
    if pad:
        if fmt not in ("plain", "reverse") or max(len(str(a)), len(str(b))) > pad:
            raise ValueError(f"pad={pad}: zero padding is for the plain and reverse formats (got {fmt!r}) "
                             f"and operands of at most pad digits (got {a} and {b})")
        w = answer_width(pad, op)
        a_s, b_s, v_s = f"{a:0{pad}d}", f"{b:0{pad}d}", f"{value:0{w}d}"
    else:
        a_s, b_s, v_s = str(a), str(b), str(value)
    if fmt == "plain":
        return f"{a_s}{sign}{b_s}=", f"{v_s}{EOS}"
    if fmt == "reverse":
        return f"${a_s}{sign}{b_s}=", f"{v_s[::-1]}${EOS}"
    prompt = f"Input:\n{a}{sign}{b}\nTarget:\n"
    body = simplified_scratchpad(a, b) if fmt == "simple" else detailed_scratchpad(a, b)
    return prompt, body + EOS


def parse_answer(completion: str, fmt: str, pad: int = 0) -> str:
    """The final answer (decimal digits, most significant first) in a completion the model wrote;
    "" when it has none. Text after EOS is ignored. With pad, leading zeros are dropped (0 stays)."""
    text = completion.split(EOS)[0]
    if fmt in ("plain", "reverse"):
        answer = text.strip() if fmt == "plain" else text.split("$")[0].strip()[::-1]
        return (answer.lstrip("0") or "0") if pad and answer.isdigit() else answer
    last = text.rstrip("\n").split("\n")[-1]
    return last.replace(" ", "") if fmt == "detailed" else last.strip()


def check_task(op: str, fmt: str) -> None:
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}; choose one of {', '.join(OPERATIONS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if op != "add" and fmt in ("simple", "detailed"):
        raise ValueError(f"the {fmt} scratchpad is written for addition only; "
                         f"--op {op} takes plain or reverse")


def count_carries(a: int, b: int) -> int:
    """Positions of a + b that carry into the next one."""
    carries, carry = 0, 0
    while a or b:
        carry = (a % 10 + b % 10 + carry) // 10
        carries += carry
        a, b = a // 10, b // 10
    return carries


def _random_number(rng: np.random.Generator, n_digits: int) -> int:
    lo = 0 if n_digits == 1 else 10 ** (n_digits - 1)
    return int(rng.integers(lo, 10 ** n_digits))


def _addition_with_carries(rng, len_a: int, len_b: int, carries: int, tries: int = 50):
    """An addition of a len_a-digit and a len_b-digit number (len_a >= len_b) that carries at
    exactly `carries` positions, or None when a few random carry patterns do not fit."""
    d = len_a
    for _ in range(tries):
        pattern = np.zeros(d, dtype=bool)
        pattern[rng.choice(d, size=carries, replace=False)] = True
        da, db, carry, ok = [], [], 0, True
        for i in range(d):
            lo_a = 1 if i == d - 1 and d > 1 else 0
            lo_b = 1 if i == len_b - 1 and len_b > 1 else 0
            # every digit pair valid at this position, given the carry in and the carry wanted out
            pairs = [(x, y) for x in range(lo_a, 10) for y in (range(lo_b, 10) if i < len_b else (0,))
                     if (x + y + carry >= 10) == pattern[i]]
            if not pairs:
                ok = False
                break
            x, y = pairs[rng.integers(len(pairs))]
            da.append(x)
            db.append(y)
            carry = int(pattern[i])
        if ok:
            a = int("".join(map(str, da[::-1])))
            b = int("".join(map(str, db[::-1])))
            return a, b
    return None


def sample_problem(rng: np.random.Generator, digits: int, op: str = "add") -> tuple[int, int]:
    """One (a, b), balanced over digit counts (and carries, for addition)."""
    d = int(rng.integers(1, digits + 1))
    e = int(rng.integers(1, d + 1))
    if op == "add":
        while True:  # a carry count this pair of lengths cannot reach is redrawn
            got = _addition_with_carries(rng, d, e, int(rng.integers(0, d + 1)))
            if got is not None:
                break
        a, b = got
    else:
        a, b = _random_number(rng, d), _random_number(rng, e)
    if op == "sub":
        return max(a, b), min(a, b)  # a >= b: the difference is never negative
    return (a, b) if rng.random() < 0.5 else (b, a)


@dataclass
class ArithmeticSplit:
    train: list[tuple[int, int]]
    test: list[tuple[int, int]]


def _stratum(a: int, b: int) -> tuple[int, int]:
    return len(str(a)), len(str(b))


def _stratum_cap(stratum: tuple[int, int]) -> int:
    """Test problems allowed in one (digits of a, digits of b) stratum: a quarter of its problems,
    so training can always draw from the rest (there are only 100 one-digit additions)."""
    size = [10 if k == 1 else 9 * 10 ** (k - 1) for k in stratum]
    return size[0] * size[1] // 4


def test_capacity(digits: int) -> int:
    """The most test problems make_split can hold out for `digits`."""
    return sum(_stratum_cap((i, j)) for i in range(1, digits + 1) for j in range(1, digits + 1))


def make_split(digits: int, n_train: int, n_test: int = 500, op: str = "add",
               seed: int = 0) -> ArithmeticSplit:
    """n_test distinct test problems (at most a quarter of any digit-count stratum), then n_train
    training problems from the same balanced distribution with every test problem rejected."""
    check_task(op, "plain")
    if digits < 1 or n_train < 1 or n_test < 1:
        raise ValueError(f"digits, n_train and n_test must be >= 1, got {digits}, {n_train}, {n_test}")
    if n_test > test_capacity(digits):
        raise ValueError(f"n_test {n_test} is more than the {test_capacity(digits)} problems that can "
                         f"be held out for {digits}-digit {op} (a quarter of each digit-count stratum); "
                         "lower n_test")
    rng = np.random.default_rng(seed)
    test: dict[tuple[int, int], None] = {}
    per_stratum: dict[tuple[int, int], int] = {}
    while len(test) < n_test:
        p = sample_problem(rng, digits, op)
        s = _stratum(*p)
        if p in test or per_stratum.get(s, 0) >= _stratum_cap(s):
            continue
        test[p] = None
        per_stratum[s] = per_stratum.get(s, 0) + 1
    train = []
    while len(train) < n_train:
        p = sample_problem(rng, digits, op)
        if p not in test:
            train.append(p)
    return ArithmeticSplit(train=train, test=list(test))


def answer_of(a: int, b: int, op: str) -> str:
    return str({"add": a + b, "sub": a - b, "mul": a * b}[op])
