"""Double-backward cases of the complex Functions (tinyml/ops/complex.py, ops/_complex_grad.py) for
tests/test_double_backward.py, merged into its CASES by tests/double_backward_cases.py. The inputs
are real float64 tensors: a (..., 2) one becomes complex through view_as_complex, and complex
outputs go back through view_as_real, on tinyml and torch alike."""
from __future__ import annotations

from double_backward_cases import Case, r


def _c(T, x):
    return T.view_as_complex(x)


COMPLEX_CASES = {
    "Real": [Case(lambda T, F, x: _c(T, x).real * x[..., 1], (r(3, 4, 2),))],
    "Imag": [Case(lambda T, F, x: _c(T, x).imag ** 2 * x[..., 0], (r(3, 4, 2),))],
    "ViewAsReal": [Case(lambda T, F, x: T.view_as_real(_c(T, x) * _c(T, x)), (r(3, 4, 2),))],
    "ViewAsComplex": [Case(lambda T, F, x: T.view_as_real(_c(T, x).exp() * _c(T, x)), (r(3, 4, 2),))],
    "Conj": [Case(lambda T, F, x: T.view_as_real(_c(T, x).conj() * _c(T, x) * _c(T, x)), (r(3, 4, 2),))],
    "Complex": [Case(lambda T, F, a, b: T.view_as_real(T.complex(a, b) ** 2 / (T.complex(b, a) + 3)),
                     (r(3, 4), r(3, 4)))],
    "Angle": [Case(lambda T, F, x: _c(T, x).angle() * x[..., 0], (r(3, 4, 2),))],
    "ComplexAbs": [Case(lambda T, F, x: _c(T, x).abs() * x[..., 1], (r(3, 4, 2),))],
}
