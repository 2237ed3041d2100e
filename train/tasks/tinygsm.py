"""TinyGSM at toy scale (Liu et al. 2023): grade-school word problems, each with a Python function
that solves it, and gold answers computed by executing that function in the sandbox (sandbox.py).

    problems = generate(1000, seed=0)                 # Problem(question, solution, template, numbers)
    with_gold = attach_gold(problems)                 # .answer from running .solution in the sandbox
    train, test = split(3000, 200, by="wording")      # test wordings never seen in training

Templates cover rates, ages, money, fractions, percentages and multi-step problems; names, objects
and numbers are drawn at random and each template has several paraphrased wordings of the
question. `describe(problems)` reports the size and diversity of a set (templates, wordings,
distinct questions, names, objects). Held-out splits (SPLITS), each a pair of distributions that
`distribution(by, part)` gives as generate() arguments, part "train", "test" or "all" (both):

    template  HELD_OUT_TEMPLATES only in test; quantities from 2..99
    numbers   training problems draw their random quantities from [2, 50], test problems from
              [51, 99] (the quantities derived from them, like a price times a count, follow)
    wording   one paraphrase of every template (HELD_OUT_WORDINGS) only in test, its 3 to 5 others
              only in training; quantities from [2, 50] on both sides
    instance  the same distribution on both sides (every wording, quantities from [2, 50]); only
              the questions differ (a test question is never a training one)

The generator model, sampling and execution are in tinygsm_model.py, the verifier in
tinygsm_verifier.py, best-of-N selection in tinygsm_select.py, and the whole job (`tinyml tinygsm`)
in tinygsm_run.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import tinygsm_styles as styling
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
    style: int = 0  # the solution's style (tinygsm_styles.py; 0: the template's own)


def _t_rate(r, name, obj, n):
    a, h = n(), n()
    ask = [
        f"{name} packs {a} {obj} every hour. How many {obj} does {name} pack in {h} hours?",
        f"Working at {a} {obj} per hour, how many {obj} will {name} have packed after {h} hours?",
        f"In one hour {name} can pack {a} {obj}. If {name} works for {h} hours, how many {obj} are packed?",
        # the paraphrases after a template's classic ones (CLASSIC_WORDINGS) are drawn only by the
        # wording split, so the other splits keep the problems they were measured with
        f"For {h} hours, {name} packs {a} {obj} each hour. How many {obj} is that in total?",
        f"{name} works {h} hours at a rate of {a} {obj} an hour. How many {obj} get packed?",
        f"How many {obj} does {name} pack at {a} per hour over {h} hours?",
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
        f"{name}'s age is {age}. {other} is {diff} years older. In {years} years, how old is {other}?",
        f"In {years} years, how old will {other} be if {other} is {diff} years older than {name}, who is "
        f"{age} now?",
        f"{other} was born {diff} years before {name}. {name} is {age} today. How old will {other} be after "
        f"{years} more years?",
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
        f"{name} pays ${paid} for {count} {obj} priced at ${price} apiece. How much change comes back?",
        f"With ${paid}, {name} buys {count} {obj} for ${price} each. How much money is left over?",
        f"{count} {obj} at ${price} each are bought by {name} with a ${paid} payment. What change is due?",
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
        f"{name} gives 1/{k} of {total} {obj} to a friend. How many {obj} remain?",
        f"A friend receives one {['', '', 'half', 'third', 'quarter', 'fifth'][k]} of the {total} {obj} "
        f"{name} owns. How many are left with {name}?",
        f"After giving away 1/{k} of {name}'s {total} {obj}, how many {obj} are left?",
    ]
    code = f"def solution():\n    given = {total} // {k}\n    return {total} - given\n"
    return ask, code, (total, k)


def _t_percent(r, name, obj, n):
    price, pct = n() * 4, int(r.choice([10, 20, 25, 50]))
    ask = [
        f"A box of {obj} costs ${price}. It is on sale for {pct}% off. What is the sale price?",
        f"{name} sees {obj} priced at ${price} with a {pct}% discount. How much does {name} pay?",
        f"What does {name} pay for {obj} that cost ${price} after a {pct}% discount?",
        f"The {obj} are marked ${price}, then reduced by {pct}%. What is the new price?",
        f"With {pct}% off, how much do {obj} priced ${price} cost?",
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
        f"{name} starts with {start} {obj} and buys {bought} more. Split evenly into {boxes} boxes, how "
        f"many {obj} go in each box?",
        f"{name} has {start} {obj}, gets {bought} more, and packs them equally in {boxes} boxes. How many "
        "per box?",
        f"How many {obj} per box when {name}'s {start} {obj} plus {bought} new ones are divided evenly among "
        f"{boxes} boxes?",
    ]
    code = f"def solution():\n    total = {start} + {bought}\n    return total // {boxes}\n"
    return ask, code, (start, bought, boxes)


def _t_speed(r, name, obj, n):
    speed, hours, extra = n(), int(r.integers(2, 6)), n()
    ask = [
        f"{name} drives at {speed} miles per hour for {hours} hours and then walks {extra} more miles. How "
        "far did {name} travel in all?".replace("{name}", name),
        f"How many miles does {name} cover driving {hours} hours at {speed} mph plus a {extra}-mile walk?",
        f"{name} walks {extra} miles after driving {hours} hours at {speed} miles per hour. What is the "
        "total distance?",
        f"Driving at {speed} mph for {hours} hours, then walking {extra} miles: how far does {name} go?",
        f"{name} covers {hours} hours of driving at {speed} miles per hour and a {extra}-mile walk. How many "
        "miles in total?",
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
        f"{name} has ${saved} and adds ${weekly} every week. How many weeks until {name} reaches ${goal}?",
        f"A bike costs ${goal}. {name} has ${saved} and saves ${weekly} weekly. How many weeks must {name} "
        "wait?",
        f"How many weeks of saving ${weekly} does {name} need to go from ${saved} to ${goal}?",
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
        f"On three days {name} picked up {a}, {b} and {c} {obj}. What is the daily average?",
        f"What is the average number of {obj} per day if {name} got {a}, {b} and {c} on three days?",
        f"{name}'s three days gave {a}, {b} and {c} {obj}. How many is that per day on average?",
    ]
    code = f"def solution():\n    days = [{a}, {b}, {c}]\n    return sum(days) / len(days)\n"
    return ask, code, (a, b, c)


def _t_ratio(r, name, obj, n):
    x, y, k = int(r.integers(1, 6)), int(r.integers(1, 6)), n()
    total = (x + y) * k
    ask = [
        f"{name} splits {total} {obj} with a friend in the ratio {x}:{y}. How many does {name} get?",
        f"{total} {obj} are shared between {name} and a friend as {x} to {y}. What is {name}'s share?",
        f"{name} and a friend share {total} {obj} in the ratio {x}:{y}. How many {obj} does {name} receive?",
        f"In a {x}:{y} split of {total} {obj} between {name} and a friend, what is {name}'s part?",
        f"How many of {total} {obj} does {name} get when they are divided {x} to {y} with a friend?",
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
# how many paraphrases each template has (its wordings are indices 0..count-1)
WORDING_COUNTS = {t: len(f(np.random.default_rng(0), NAMES[0], OBJECTS[0], lambda: 2)[0])
                  for t, f in TEMPLATES.items()}
# the first paraphrases of each template, the only ones generate() draws without `wordings`; the
# others were added for the wording split, which needs several training paraphrases per template
CLASSIC_WORDINGS = {t: 3 if t in ("rate", "money") else 2 for t in TEMPLATES}
HELD_OUT_WORDINGS = {t: (k - 1,) for t, k in CLASSIC_WORDINGS.items()}  # the last classic one
TRAIN_WORDINGS = {t: tuple(i for i in range(WORDING_COUNTS[t]) if i not in HELD_OUT_WORDINGS[t])
                  for t in TEMPLATES}
SPLITS = ("numbers", "wording", "instance", "template")


def generate(n: int, seed: int = 0, templates=None, numbers: tuple[int, int] = (2, 99),
             wordings: dict | None = None, styles=1) -> list[Problem]:
    """n problems from `templates` (default all), numbers uniform in [numbers[0], numbers[1]], each
    worded by one of its template's CLASSIC_WORDINGS; `wordings` ({template: wording indices})
    draws from those paraphrases instead (and keeps the templates to its keys). `styles` ("all" or
    a count, tinygsm_styles.style_count) writes each solution in one of its template's first
    `styles` styles, drawn from a stream of its own: the questions stay those of styles=1 (the
    default, the template's own solution). Problems are drawn one after another: generate(m)[:n] ==
    generate(n)."""
    count = styling.style_count(styles)
    style_rng = np.random.default_rng([seed, styling.STYLE_STREAM])
    names = list(templates or (wordings or TEMPLATES))
    unknown = [t for t in names if t not in TEMPLATES]
    if unknown or n < 0 or numbers[0] < 1 or numbers[0] > numbers[1]:
        raise ValueError(
            f"generate: templates must be among {', '.join(TEMPLATES)} (got {unknown or 'ok'}), "
            f"n >= 0 (got {n}) and numbers a range of positive integers (got {numbers})"
        )
    if wordings is not None:
        bad = {t: w for t, w in wordings.items() if t not in TEMPLATES or not w
               or any(not 0 <= i < WORDING_COUNTS[t] for i in w)}
        missing = [t for t in names if t not in wordings]
        if bad or missing:
            raise ValueError(f"generate: wordings must give every template some of its paraphrase indices "
                             f"({WORDING_COUNTS}); got {bad or ''} {missing or ''}".rstrip())
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
        if wordings is None:
            wording = int(rng.integers(CLASSIC_WORDINGS[template]))
        else:
            allowed = wordings[template]
            wording = int(allowed[int(rng.integers(len(allowed)))])
        style = styling.pick_style(style_rng, template, count) if count > 1 else 0
        code = styling.solution(template, style, used, name, code)
        out.append(Problem(asks[wording], code, template, wording, used, tuple(drawn), style=style))
    return out


def distribution(by: str, part: str) -> dict:
    """generate() keyword arguments for one side of a split: part "train", "test" or "all" (the
    union of both, e.g. for problems of a verifier that may see the test distribution)."""
    if by not in SPLITS or part not in ("train", "test", "all"):
        raise ValueError(f"distribution: by must be one of {', '.join(SPLITS)} (got {by!r}) and part "
                         f"'train', 'test' or 'all' (got {part!r})")
    if by == "template":
        templates = {"train": [t for t in TEMPLATES if t not in HELD_OUT_TEMPLATES],
                     "test": list(HELD_OUT_TEMPLATES), "all": None}[part]
        return {"templates": templates}
    if by == "numbers":
        both = (NUMBER_RANGES["train"][0], NUMBER_RANGES["test"][1])
        return {"numbers": both if part == "all" else NUMBER_RANGES[part]}
    out = {"numbers": NUMBER_RANGES["train"]}
    if by == "wording" and part != "all":
        out["wordings"] = TRAIN_WORDINGS if part == "train" else HELD_OUT_WORDINGS
    return out


def draw_new(n: int, seed: int, exclude: set, **kwargs) -> list[Problem]:
    """The first n problems of generate(..., seed, **kwargs) whose question is not in `exclude`."""
    if n <= 0:
        return []
    for size in (2 * n + 50, 10 * n + 500):
        fresh = [p for p in generate(size, seed, **kwargs) if p.question not in exclude]
        if len(fresh) >= n:
            return fresh[:n]
    raise ValueError(f"draw_new: fewer than {n} problems outside the {len(exclude)} excluded questions "
                     f"among {size} drawn with {kwargs}: the distribution is too small")


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


def split(n_train: int, n_test: int, by: str = "template", seed: int = 0,
          styles=1) -> tuple[list[Problem], list[Problem]]:
    """(train, test) with no leakage, by one of SPLITS (see the module docstring): the training
    problems are generate(n_train, seed, **distribution(by, "train")), the test problems the first
    n_test of seed + 1 on the test side whose question is not a training one (`styles`: generate's)."""
    if by not in SPLITS:
        raise ValueError(f"split by must be one of {', '.join(repr(s) for s in SPLITS)}, got {by!r}")
    train = generate(n_train, seed, styles=styles, **distribution(by, "train"))
    test = draw_new(n_test, seed + 1, {p.question for p in train}, styles=styles, **distribution(by, "test"))
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
