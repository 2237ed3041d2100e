"""tinyml.nn: Module, Parameter, layers, activations, losses, containers, init, and functional (as F).

    import tinyml.nn as nn
    import tinyml.nn.functional as F
    model = nn.Sequential(nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 2))
"""
from . import functional, init, utils  # noqa: F401
from .activation import (  # noqa: F401
                         ELU,
                         GELU,
                         GLU,
                         SELU,
                         Hardsigmoid,
                         Hardswish,
                         Hardtanh,
                         LeakyReLU,
                         LogSigmoid,
                         LogSoftmax,
                         Mish,
                         ReLU,
                         ReLU6,
                         Sigmoid,
                         SiLU,
                         Softmax,
                         Softplus,
                         Tanh,
)
from .attention import MultiheadAttention  # noqa: F401
from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d  # noqa: F401
from .bilinear import Bilinear  # noqa: F401
from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential  # noqa: F401
from .conv import (  # noqa: F401  # noqa: F401
                         AdaptiveAvgPool2d,
                         AvgPool2d,
                         Conv1d,
                         Conv2d,
                         ConvTranspose1d,
                         ConvTranspose2d,
                         MaxPool2d,
                         Upsample,
)
from .distance import CosineSimilarity, PairwiseDistance  # noqa: F401
from .dropout import Dropout1d, Dropout2d  # noqa: F401
from .fold import Fold, Unfold  # noqa: F401
from .instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d  # noqa: F401
from .interval import BoundedModule, BoundedTensor, PerturbationLpNorm, interval_bounds  # noqa: F401
from .layers import (  # noqa: F401
                         Dropout,
                         Embedding,
                         Flatten,
                         GroupNorm,
                         Identity,
                         LayerNorm,
                         Linear,
                         PReLU,  # noqa: F401
                         RMSNorm,
                         Unflatten,
)
from .loss import (  # noqa: F401
                         BCELoss,
                         BCEWithLogitsLoss,
                         CrossEntropyLoss,
                         HuberLoss,
                         KLDivLoss,
                         L1Loss,
                         MSELoss,
                         NLLLoss,
                         SmoothL1Loss,
)
from .module import Module  # noqa: F401
from .padding import (  # noqa: F401
                         CircularPad1d,
                         CircularPad2d,
                         CircularPad3d,
                         ConstantPad1d,
                         ConstantPad2d,
                         ConstantPad3d,
                         ReflectionPad1d,
                         ReflectionPad2d,
                         ReflectionPad3d,
                         ReplicationPad1d,
                         ReplicationPad2d,
                         ReplicationPad3d,
                         ZeroPad1d,
                         ZeroPad2d,
                         ZeroPad3d,
)
from .parameter import Buffer, Parameter  # noqa: F401
from .pooling import AdaptiveAvgPool1d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d, MaxPool1d  # noqa: F401
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase  # noqa: F401
from .transformer import (  # noqa: F401
                         Transformer,
                         TransformerDecoder,
                         TransformerDecoderLayer,
                         TransformerEncoder,
                         TransformerEncoderLayer,
)
