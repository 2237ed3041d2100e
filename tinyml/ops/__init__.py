"""The differentiable ops, one module per family; everything public is re-exported here and at
`tinyml.<name>`. Tensor methods of the same name delegate to these functions."""
from ._broadcast import broadcast_shapes  # noqa: F401
from .creation import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .movement import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .nn import *  # noqa: F401,F403
