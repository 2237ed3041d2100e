"""The differentiable ops, one module per family; everything public is re-exported here and at
`tinyml.<name>`. tinyml/tensor_methods.py binds the Tensor methods of the same names to them.

How families reach each other: a module imports the sibling that owns an op it uses, at the top
(`from .pointwise import where`), so the imports form layers without a cycle. Where that owner
imports this module back, the op is called as a Tensor method (`x.index_select(...)`,
`mask.sum(...)`) or, for a function that is no method (`cat`, `stack`), imported inside the
function with a one-line reason.
"""
from ._broadcast import broadcast_shapes  # noqa: F401
from .activation import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .batch_norm import *  # noqa: F401,F403
from .boxes import *  # noqa: F401,F403
from .causal_conv1d import *  # noqa: F401,F403
from .complex import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .composed import *  # noqa: F401,F403
from .creation import *  # noqa: F401,F403
from .detection_loss import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .einsum import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .inplace import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .loss_embedding import *  # noqa: F401,F403
from .matmul import *  # noqa: F401,F403
from .matrix_ops import *  # noqa: F401,F403
from .movement import *  # noqa: F401,F403
from .movement_copy import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .pointwise import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .sampling import *  # noqa: F401,F403
from .scan import *  # noqa: F401,F403
from .scatter import *  # noqa: F401,F403
from .selective_state_update import *  # noqa: F401,F403
from .search import *  # noqa: F401,F403
from .slicing import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .sort import *  # noqa: F401,F403
from .special import *  # noqa: F401,F403
from .unary import *  # noqa: F401,F403
from .unary_inplace import *  # noqa: F401,F403
