"""tinyml.special: torch.special's names for the special functions tinyml has (each one is the op of
the same meaning in tinyml.ops, with its gradient).

    expit(x) = sigmoid(x);  logit(p) = log(p / (1 - p));  xlogy(x, y) = x log y (0 where x = 0)
    erf, erfinv, exp2, expm1, log1p, sinc, logsumexp, softmax, log_softmax, round

Not here yet (torch has them): erfc, erfcx, gammaln, digamma, polygamma, i0, i0e, i1, i1e, ndtr,
ndtri, log_ndtr, bessel_*, zeta, entr, multigammaln.
"""
from .ops import erf, erfinv, exp2, expm1, log1p, logit, logsumexp, round, sigmoid, sinc, xlogy
from .ops.softmax import log_softmax, softmax

expit = sigmoid

__all__ = ["erf", "erfinv", "exp2", "expit", "expm1", "log1p", "log_softmax", "logit", "logsumexp", "round",
           "sinc", "softmax", "xlogy"]
