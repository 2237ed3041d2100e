"""Differentiable architecture search (first-order DARTS) with a softmax temperature, on the 8x8 digits.

    operations.py  the candidate operations (none, skip, max/avg pool, conv / separable / dilated conv) and
                   MixedOp: sum_o softmax(alpha / T)_o * o(x)
    network.py     SearchNetwork (cells of MixedOps, alpha, temperature, entropy, genotype) and
                   DiscreteNetwork (one operation per edge, from a genotype)
    search.py      DartsConfig, search (bi-level first-order updates), calibrated_accuracy, retrain,
                   run_temperatures

examples/darts/ runs the temperature sweep; docs/darts.md has the results.
"""
from .network import DiscreteNetwork, SearchNetwork
from .operations import DEFAULT_PRIMITIVES, OPERATIONS, MixedOp, check_primitives, make_operation
from .search import DartsConfig, accuracy, calibrated_accuracy, retrain, run_temperatures, search

__all__ = ["DEFAULT_PRIMITIVES", "OPERATIONS", "DartsConfig", "DiscreteNetwork", "MixedOp", "SearchNetwork",
           "accuracy", "check_primitives", "calibrated_accuracy", "make_operation", "retrain",
           "run_temperatures", "search"]
