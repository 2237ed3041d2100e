"""Double-backward cases for ops/special.py's Functions (merged into double_backward_cases.CASES)."""
from __future__ import annotations

from double_backward_cases import Case, pos, prob, r

SPECIAL_ABSTRACT = {"_Special", "_SpecialBinary"}

SPECIAL_CASES = {
    "Asin": [Case(lambda T, F, x: (x * 0.8).asin(), (prob(3, 4),))],
    "Acos": [Case(lambda T, F, x: (x * 0.8).acos(), (prob(3, 4),))],
    "Atan": [Case(lambda T, F, x: x.atan(), (r(3, 4),))],
    "Sinh": [Case(lambda T, F, x: x.sinh(), (r(3, 4),))],
    "Cosh": [Case(lambda T, F, x: x.cosh(), (r(3, 4),))],
    "Asinh": [Case(lambda T, F, x: x.asinh(), (r(3, 4),))],
    "Acosh": [Case(lambda T, F, x: (x + 1.0).acosh(), (pos(3, 4),))],
    "Atanh": [Case(lambda T, F, x: (x * 0.8).atanh(), (prob(3, 4),))],
    "Erfinv": [Case(lambda T, F, x: (x * 1.6 - 0.8).erfinv(), (prob(3, 4),))],
    "Atan2": [Case(lambda T, F, y, x: T.atan2(y, x), (r(3, 4), pos(3, 4)))],
    "Hypot": [Case(lambda T, F, a, b: T.hypot(a, b), (pos(3, 4), pos(3, 4)))],
    "Copysign": [Case(lambda T, F, a, b: T.copysign(a, b) * a, (r(3, 4), r(3, 4)))],
    "Xlogy": [Case(lambda T, F, a, b: T.xlogy(a, b), (r(3, 4), pos(3, 4)))],
    "LogAddExp": [Case(lambda T, F, a, b: T.logaddexp(a, b), (r(3, 4), r(3, 4)))],
    "Sinc": [Case(lambda T, F, x: T.sinc(x), (r(3, 4),))],
}
