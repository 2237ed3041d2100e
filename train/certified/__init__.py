"""Certified training: interval bound propagation (IBP) and SABR on the 8x8 digits; PGD and IBP evaluation.

    attacks.py   pgd_attack: PGD inside a box (PGD accuracy; SABR's small-box centres)
    losses.py    margin lower bounds by IBP, the robust cross-entropy, SABR's centre range, certified_mask
    training.py  CertifiedConfig (method standard / ibp / sabr, epsilon ramp, kappa schedule), small_cnn,
                 train_certified, evaluate (clean / PGD / certified accuracy), run_table

The bounds themselves are tinyml.nn.interval's. examples/certified/ runs the table; docs/certified.md has it.
"""
from .attacks import pgd_attack
from .losses import certified_mask, epsilon_box, margin_lower_bounds, robust_cross_entropy, sabr_centre_range
from .training import METHODS, CertifiedConfig, evaluate, run_table, schedule, small_cnn, train_certified

__all__ = ["METHODS", "CertifiedConfig", "certified_mask", "epsilon_box", "evaluate", "margin_lower_bounds",
           "pgd_attack", "robust_cross_entropy", "run_table", "sabr_centre_range", "schedule", "small_cnn",
           "train_certified"]
