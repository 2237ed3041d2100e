"""Learning-rate schedulers (torch.optim.lr_scheduler): same classes, arguments and lr sequences.

schedules.py holds the base class and torch's step-wise schedules (LambdaLR, StepLR, MultiStepLR,
ConstantLR, LinearLR, ExponentialLR, CosineAnnealingLR, SequentialLR); warmup.py the schedules
with a warmup phase (OneCycleLR, get_cosine_schedule_with_warmup); plateau.py ReduceLROnPlateau;
restarts.py CosineAnnealingWarmRestarts and MultiplicativeLR.
"""
from .plateau import ReduceLROnPlateau
from .restarts import CosineAnnealingWarmRestarts, MultiplicativeLR, PolynomialLR
from .schedules import (
                        ConstantLR,
                        CosineAnnealingLR,
                        ExponentialLR,
                        LambdaLR,
                        LinearLR,
                        LRScheduler,
                        MultiStepLR,
                        SequentialLR,
                        StepLR,
)
from .warmup import OneCycleLR, get_cosine_schedule_with_warmup

__all__ = ["ConstantLR", "CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR",
           "MultiStepLR", "OneCycleLR", "SequentialLR", "StepLR", "get_cosine_schedule_with_warmup"]
__all__ += ["CosineAnnealingWarmRestarts", "MultiplicativeLR", "PolynomialLR", "ReduceLROnPlateau"]
