"""TinyGSM at toy scale (Liu et al. 2023): grade-school word problems, each with a Python function
that solves it, and gold answers computed by executing that function in the sandbox (sandbox.py).

    problems = generate(1000, seed=0)                 # Problem(question, solution, template, numbers)
    with_gold = attach_gold(problems)                 # .answer from running .solution in the sandbox
    train, test = split(with_gold, by="template")     # test templates never seen in training

Templates cover rates, ages, money, fractions, percentages and multi-step problems; names, objects
and numbers are drawn at random and each template has several paraphrased wordings of the
question. `describe(problems)` reports the size and diversity of a set (templates, wordings,
distinct questions, names, objects). Held-out splits: by="template" keeps HELD_OUT_TEMPLATES for
test only; by="numbers" draws the training problems' random quantities from [2, 50] and the test
problems' from [51, 99] (the quantities derived from them, like a price times a count, follow).
The generator model, sampling and execution are in tinygsm_model.py, the verifier in
tinygsm_verifier.py, best-of-N selection in tinygsm_select.py, and the whole job (`tinyml tinygsm`)
in tinygsm_run.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .sandbox import run_python

NAMES = (
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Iris",
    "Jamal",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
)
OBJECTS = (
    "apples",
    "pencils",
    "stickers",
    "marbles",
    "cookies",
    "books",
    "shells",
    "cards",
    "stamps",
    "eggs",
)


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str  # Python source defining solution()
    template: str
    wording: int
    numbers: tuple  # the quantities the question states
    drawn: tuple = ()  # the random draws they come from (what by="numbers" keeps apart)
    answer: object = None  # filled by attach_gold


def _t_rate(r, name, obj, n):
    a, h = n(), n()
    ask = [
        f"{name} packs {a} {obj} every hour. How many {obj} does {name} pack in {h} hours?",
        f"Working at {a} {obj} per hour, how many {obj} will {name} have packed after {h} hours?",
        f"In one hour {name} can pack {a} {obj}. If {name} works for {h} hours, how many {obj} are packed?",
    ]
    code = f"def solution():\n    per_hour = {a}\n    hours = {h}\n    return per_hour * hours\n"
    return ask, code, (a, h)


def _t_ages(r, name, obj, n):
    age, diff, years = n(), n(), n()
    other = NAMES[(NAMES.index(name) + 7) % len(NAMES)]
    ask = [
        f"{name} is {age} years old. {other} is {diff} years older than {name}. How old will {other} be in "
        f"{years} years?",
        f"{other} is {diff} years older than {name}, who is {age}. What will {other}'s age be {years} years "
        "from now?",
    ]
    code = (
        f"def solution():\n    {name.lower()} = {age}\n    {other.lower()} = {name.lower()} + {diff}\n"
        f"    return {other.lower()} + {years}\n"
    )
    return ask, code, (age, diff, years)


def _t_money(r, name, obj, n):
    price, count, paid = n(), n(), 0
    paid = price * count + n()
    ask = [
        f"{name} buys {count} {obj} at ${price} each and pays with ${paid}. How much change does {name} get?",
        f"Each of the {obj} costs ${price}. {name} buys {count} of them and hands over ${paid}. What is the "
        "change?",
        f"How much change does {name} receive after paying ${paid} for {count} {obj} that cost "
        f"${price} each?",
    ]
    code = f"def solution():\n    cost = {price} * {count}\n    return {paid} - cost\n"
    return ask, code, (price, count, paid)


def _t_fraction(r, name, obj, n):
    k = int(r.choice([2, 3, 4, 5]))
    total = k * n()
    ask = [
        f"{name} has {total} {obj} and gives away 1/{k} of them. How many {obj} are left?",
        f"Of {name}'s {total} {obj}, one {['', '', 'half', 'third', 'quarter', 'fifth'][k]} are given to a "
        f"friend. How many does {name} keep?",
    ]
    code = f"def solution():\n    given = {total} // {k}\n    return {total} - given\n"
    return ask, code, (total, k)


def _t_percent(r, name, obj, n):
    price, pct = n() * 4, int(r.choice([10, 20, 25, 50]))
    ask = [
        f"A box of {obj} costs ${price}. It is on sale for {pct}% off. What is the sale price?",
        f"{name} sees {obj} priced at ${price} with a {pct}% discount. How much does {name} pay?",
    ]
    code = f"def solution():\n    discount = {price} * {pct} / 100\n    return {price} - discount\n"
    return ask, code, (price, pct)


def _t_multistep(r, name, obj, n):
    start, bought, boxes = n(), n(), int(r.integers(2, 6))
    ask = [
        f"{name} had {start} {obj}, bought {bought} more, and then shared them equally into {boxes} boxes, "
        "keeping the leftovers. How many {obj} are in each box?".replace("{obj}", obj),
        f"After buying {bought} {obj}, {name}, who had {start}, splits all of them evenly among "
        f"{boxes} boxes. "
        "How many go in each box?",
    ]
    code = f"def solution():\n    total = {start} + {bought}\n    return total // {boxes}\n"
    return ask, code, (start, bought, boxes)


def _t_speed(r, name, obj, n):
    speed, hours, extra = n(), int(r.integers(2, 6)), n()
    ask = [
        f"{name} drives at {speed} miles per hour for {hours} hours and then walks {extra} more miles. How "
        "far did {name} travel in all?".replace("{name}", name),
        f"How many miles does {name} cover driving {hours} hours at {speed} mph plus a {extra}-mile walk?",
    ]
    code = f"def solution():\n    driven = {speed} * {hours}\n    return driven + {extra}\n"
    return ask, code, (speed, hours, extra)


def _t_savings(r, name, obj, n):
    goal, weekly, saved = n() * 10, n(), n()
    ask = [
        f"{name} wants ${goal} for a bike, has ${saved} saved and saves ${weekly} a week. "
        "How many weeks until "
        f"{name} has enough?",
        f"Saving ${weekly} each week from ${saved}, how many weeks does {name} need to reach ${goal}?",
    ]
    code = (
        f"def solution():\n    need = {goal} - {saved}\n    if need <= 0:\n        return 0\n"
        f"    return -(-need // {weekly})\n"
    )
    return ask, code, (goal, weekly, saved)


def _t_average(r, name, obj, n):
    a, b, c = n(), n(), n()
    ask = [
        f"{name} collected {a}, {b} and {c} {obj} on three days. What is the average per day?",
        f"Over three days {name} found {a}, {b} and {c} {obj}. On average, how many {obj} per day?",
    ]
    code = f"def solution():\n    days = [{a}, {b}, {c}]\n    return sum(days) / len(days)\n"
    return ask, code, (a, b, c)


def _t_ratio(r, name, obj, n):
    x, y, k = int(r.integers(1, 6)), int(r.integers(1, 6)), n()
    total = (x + y) * k
    ask = [
        f"{name} splits {total} {obj} with a friend in the ratio {x}:{y}. How many does {name} get?",
        f"{total} {obj} are shared between {name} and a friend as {x} to {y}. What is {name}'s share?",
    ]
    code = f"def solution():\n    part = {total} // ({x} + {y})\n    return part * {x}\n"
    return ask, code, (total, x, y)


TEMPLATES = {
    "rate": _t_rate,
    "ages": _t_ages,
    "money": _t_money,
    "fraction": _t_fraction,
    "percent": _t_percent,
    "multistep": _t_multistep,
    "speed": _t_speed,
    "savings": _t_savings,
    "average": _t_average,
    "ratio": _t_ratio,
}
HELD_OUT_TEMPLATES = ("savings", "ratio")
NUMBER_RANGES = {"train": (2, 50), "test": (51, 99)}


def generate(n: int, seed: int = 0, templates=None, numbers: tuple[int, int] = (2, 99)) -> list[Problem]:
    """n problems from `templates` (default all), numbers uniform in [numbers[0], numbers[1]]."""
    names = list(templates or TEMPLATES)
    unknown = [t for t in names if t not in TEMPLATES]
    if unknown or n < 0 or numbers[0] < 1 or numbers[0] > numbers[1]:
        raise ValueError(
            f"generate: templates must be among {', '.join(TEMPLATES)} (got {unknown or 'ok'}), "
            f"n >= 0 (got {n}) and numbers a range of positive integers (got {numbers})"
        )
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        template = names[int(rng.integers(len(names)))]
        name, obj = NAMES[int(rng.integers(len(NAMES)))], OBJECTS[int(rng.integers(len(OBJECTS)))]
        drawn: list[int] = []

        def draw() -> int:
            drawn.append(int(rng.integers(numbers[0], numbers[1] + 1)))
            return drawn[-1]

        asks, code, used = TEMPLATES[template](rng, name, obj, draw)
        wording = int(rng.integers(len(asks)))
        out.append(Problem(asks[wording], code, template, wording, used, tuple(drawn)))
    return out


def attach_gold(problems: list[Problem], chunk: int = 200) -> list[Problem]:
    """The problems with .answer from executing their solutions in the sandbox (chunk per process)."""
    out = []
    for start in range(0, len(problems), chunk):
        part = problems[start : start + chunk]
        program = "".join(
            p.solution.replace("def solution", f"def solution_{i}", 1) for i, p in enumerate(part)
        )
        program += (
            "def solution():\n    return [" + ", ".join(f"solution_{i}()" for i in range(len(part))) + "]\n"
        )
        result = run_python(program, timeout=30.0, cpu_seconds=20, max_output=10 * len(part) * 40 + 1000)
        if not result.ok or not isinstance(result.answer, list) or len(result.answer) != len(part):
            raise RuntimeError(f"gold solutions failed in the sandbox: {result.kind}: {result.message}")
        out += [replace(p, answer=a) for p, a in zip(part, result.answer)]
    return out


def split(
    n_train: int, n_test: int, by: str = "template", seed: int = 0
) -> tuple[list[Problem], list[Problem]]:
    """(train, test) with no leakage: by "template" (HELD_OUT_TEMPLATES only in test) or by "numbers"
    (NUMBER_RANGES: every random draw of a test problem is above every training draw)."""
    if by == "template":
        train_t = [t for t in TEMPLATES if t not in HELD_OUT_TEMPLATES]
        train = generate(n_train, seed, train_t)
        test = generate(n_test, seed + 1, HELD_OUT_TEMPLATES)
    elif by == "numbers":
        train = generate(n_train, seed, numbers=NUMBER_RANGES["train"])
        test = generate(n_test, seed + 1, numbers=NUMBER_RANGES["test"])
    else:
        raise ValueError(f"split by must be 'template' or 'numbers', got {by!r}")
    return train, test


def describe(problems: list[Problem]) -> dict:
    """Size and diversity: counts of problems, templates, (template, wording) pairs, distinct
    questions and solutions, names and objects that occur."""
    text = " ".join(p.question for p in problems)
    return {
        "problems": len(problems),
        "templates": len({p.template for p in problems}),
        "wordings": len({(p.template, p.wording) for p in problems}),
        "distinct_questions": len({p.question for p in problems}),
        "distinct_solutions": len({p.solution for p in problems}),
        "names": sum(n in text for n in NAMES),
        "objects": sum(o in text for o in OBJECTS),
        "mean_question_words": float(np.mean([len(p.question.split()) for p in problems]))
        if problems
        else 0.0,
    }
