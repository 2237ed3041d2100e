"""tinyml.nn.utils (torch.nn.utils): gradient clipping and parameter flattening (clip_grad.py),
conv/linear + BatchNorm folding for inference (fusion.py, as torch.nn.utils.fusion), and packed
sequences for the recurrent layers (rnn.py, as torch.nn.utils.rnn)."""
from . import (
    fusion,  # noqa: F401
    rnn,  # noqa: F401  (pack_padded_sequence & co., as torch.nn.utils.rnn)
)
from .clip_grad import (  # noqa: F401
    clip_grad_norm_,
    clip_grad_value_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)
from .fusion import (  # noqa: F401
    fuse_conv_bn_eval,
    fuse_conv_bn_weights,
    fuse_linear_bn_eval,
    fuse_linear_bn_weights,
)
