"""Several equivalent solution styles per TinyGSM template: the ways a teacher model writes the same
program, for a generator that samples more diverse solutions at the same accuracy.

    code = solution("money", 2, (12, 3, 40), "Ava")   # price = 12 / count = 3 / paid = 40 / ...
    k = style_count("all")                             # 4: every style; style_count(1): the template's own

Style 0 of every template is the template's own solution (tinygsm.py writes it; `solution` returns
`code` unchanged), so generate(..., styles=1), the default, is exactly the single-style generator of
earlier sessions. The other styles of a template compute the same value, bit for bit as Python
computes it (the same type, int or float, and for float results the same operations on the same
integers, or ones that round identically; tests/train/tasks/test_tinygsm_styles.py executes every
style of every template on many draws against style 0):

    1  one expression (return 40 - 12 * 3), or where the template needs more a shorter form
    2  named inputs first, then the arithmetic on the names (price = 12 / count = 3 / cost = price * count)
    3  another order or decomposition: (a + h) + d for (a + d) + h, share * (k - 1) for total - share,
       a while loop for a ceiling division, a running total for sum()

Only number literals of the question and 0, 1 and 100 appear (the literals the number rule,
tinygsm_select.number_rule_scores, and the slot negatives treat as the solution's own).

Floats: "percent" is price - price * pct / 100 in styles 0-2 (the same operations) and
price * (100 - pct) / 100 in style 3, which rounds identically for every price the template draws
(4 x a quantity: checked for every quantity 1..199999 and pct in 10, 20, 25, 50); "average" divides
the same integer sum by the same count 3 in every style.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def _code(*lines: str) -> str:
    return "def solution():\n" + "".join(f"    {line}\n" for line in lines)


def _other(name: str) -> str:
    """The second person of the "ages" template (tinygsm._t_ages: seven names further on)."""
    from .tinygsm import NAMES

    return NAMES[(NAMES.index(name) + 7) % len(NAMES)]


def _rate(style, v, name):
    a, h = v
    return (None,
            _code(f"return {a} * {h}"),
            _code(f"total = {a} * {h}", "return total"),
            _code(f"hours = {h}", f"packed_per_hour = {a}", "return hours * packed_per_hour"))[style]


def _ages(style, v, name):
    age, diff, years = v
    n, o = name.lower(), _other(name).lower()
    return (None,
            _code(f"return {age} + {diff} + {years}"),
            _code(f"{n} = {age}", f"difference = {diff}", f"years = {years}", f"{o} = {n} + difference",
                  f"return {o} + years"),
            _code(f"{n}_later = {age} + {years}", f"return {n}_later + {diff}"))[style]


def _money(style, v, name):
    price, count, paid = v
    return (None,
            _code(f"return {paid} - {price} * {count}"),
            _code(f"price = {price}", f"count = {count}", f"paid = {paid}", "cost = price * count",
                  "return paid - cost"),
            _code(f"change = {paid} - {price} * {count}", "return change"))[style]


def _fraction(style, v, name):
    total, k = v
    return (None,
            _code(f"return {total} - {total} // {k}"),
            _code(f"total = {total}", f"parts = {k}", "given = total // parts", "left = total - given",
                  "return left"),
            _code(f"share = {total} // {k}", f"return share * ({k} - 1)"))[style]


def _percent(style, v, name):
    price, pct = v
    return (None,
            _code(f"return {price} - {price} * {pct} / 100"),
            _code(f"price = {price}", f"percent = {pct}", "discount = price * percent / 100",
                  "return price - discount"),
            _code(f"return {price} * (100 - {pct}) / 100"))[style]


def _multistep(style, v, name):
    start, bought, boxes = v
    return (None,
            _code(f"return ({start} + {bought}) // {boxes}"),
            _code(f"start = {start}", f"bought = {bought}", f"boxes = {boxes}", "total = start + bought",
                  "per_box = total // boxes", "return per_box"),
            _code(f"have = {start}", f"have += {bought}", f"return have // {boxes}"))[style]


def _speed(style, v, name):
    speed, hours, extra = v
    return (None,
            _code(f"return {speed} * {hours} + {extra}"),
            _code(f"speed = {speed}", f"hours = {hours}", f"walked = {extra}", "driven = speed * hours",
                  "return driven + walked"),
            _code(f"return {extra} + {hours} * {speed}"))[style]


def _savings(style, v, name):
    goal, weekly, saved = v
    return (None,
            _code(f"need = {goal} - {saved}", "if need <= 0:", "    return 0",
                  f"return (need + {weekly} - 1) // {weekly}"),
            _code(f"goal = {goal}", f"saved = {saved}", f"weekly = {weekly}", "need = goal - saved",
                  "if need <= 0:", "    return 0", "return -(-need // weekly)"),
            _code("weeks = 0", f"money = {saved}", f"while money < {goal}:", f"    money += {weekly}",
                  "    weeks += 1", "return weeks"))[style]


def _average(style, v, name):
    a, b, c = v
    return (None,
            _code(f"days = [{a}, {b}, {c}]", "mean = sum(days) / len(days)", "return mean"),
            _code(f"first = {a}", f"second = {b}", f"third = {c}", "days = [first, second, third]",
                  "return sum(days) / len(days)"),
            _code(f"days = [{a}, {b}, {c}]", "total = 0", "for day in days:", "    total += day",
                  "return total / len(days)"))[style]


def _ratio(style, v, name):
    total, x, y = v
    return (None,
            _code(f"return {total} // ({x} + {y}) * {x}"),
            _code(f"total = {total}", f"mine = {x}", f"theirs = {y}", "part = total // (mine + theirs)",
                  "return part * mine"),
            _code(f"return {total} * {x} // ({x} + {y})"))[style]


# template -> f(style, numbers, name) for styles 1.. (style 0 is the template's own code)
_WRITERS: dict[str, Callable] = {"rate": _rate, "ages": _ages, "money": _money, "fraction": _fraction,
                                 "percent": _percent, "multistep": _multistep, "speed": _speed,
                                 "savings": _savings, "average": _average, "ratio": _ratio}
STYLE_COUNTS = {t: 4 for t in _WRITERS}  # styles per template, the template's own (0) included
MAX_STYLES = max(STYLE_COUNTS.values())
STYLE_STREAM = 13  # generate() draws styles from default_rng([seed, STYLE_STREAM]), not its own stream


def style_count(styles) -> int:
    """How many styles per template `styles` allows: "all" -> MAX_STYLES, an int 1..MAX_STYLES (or
    its string) -> itself; 1 is the template's own solution only (the default of generate())."""
    if isinstance(styles, str) and styles != "all":
        styles = int(styles) if styles.isdigit() else styles
    if styles == "all":
        return MAX_STYLES
    if isinstance(styles, (int, np.integer)) and not isinstance(styles, bool) and 1 <= styles <= MAX_STYLES:
        return int(styles)
    raise ValueError(f"solution styles must be 'all' or a count 1..{MAX_STYLES}, got {styles!r}")


def pick_style(rng: np.random.Generator, template: str, count: int) -> int:
    """One style index of `template` among its first `count` (one draw from rng)."""
    return int(rng.integers(min(count, STYLE_COUNTS[template])))


def solution(template: str, style: int, numbers: tuple, name: str, code: str | None = None) -> str:
    """The solution of a problem of `template` with these `numbers` (the Problem's, in the template's
    order) and person `name` in style `style`; style 0 is `code`, the template's own."""
    if template not in _WRITERS or not 0 <= style < STYLE_COUNTS[template]:
        raise ValueError(f"solution style: template must be one of {', '.join(_WRITERS)} (got {template!r}) "
                         f"and style in 0..{STYLE_COUNTS.get(template, 1) - 1} (got {style})")
    if style == 0:
        if code is None:
            raise ValueError(f"solution style 0 of {template!r} is the template's own code: pass it")
        return code
    return _WRITERS[template](style, tuple(numbers), name)
