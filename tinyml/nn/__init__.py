"""tinyml.nn: Module, Parameter, layers, activations, losses, containers, init, and functional (as F).

    import tinyml.nn as nn
    import tinyml.nn.functional as F
    model = nn.Sequential(nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 2))
"""
from . import functional, init, utils  # noqa: F401
from .activation import (ELU, GELU, GLU, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, Mish, ReLU,  # noqa: F401
                         ReLU6, Sigmoid, SiLU, Softmax, Softplus, Tanh)
from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential  # noqa: F401
from .layers import (Dropout, Embedding, Flatten, GroupNorm, Identity, LayerNorm, Linear, RMSNorm,  # noqa: F401
                     Unflatten)
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,  # noqa: F401
                   NLLLoss, SmoothL1Loss)
from .module import Module  # noqa: F401
from .parameter import Buffer, Parameter  # noqa: F401
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, MaxPool2d, Upsample  # noqa: F401
