"""The Tensor methods that run ops, bound onto `tinyml.tensor.Tensor` when this module loads.

tensor.py holds the data structure and imports no op; the ops import Tensor. What needs both is
attached here, after both exist, so imports run one way: tensor <- autograd <- ops <- this
module. `import tinyml` loads it before returning, so every method exists before user code runs.

    Tensor(data, dtype, device)     __init__: the data as a host array, moved by the from_host kernel
    x.exp(), x.sum(1), x.view(...)  the function of the same name in tinyml.ops (METHOD_OPS)
    x.new_zeros(shape), ...         tinyml.ops.creation's new_* factories (NEW_FACTORIES)
    x + y, x @ y, x[i], x += y      tinyml._operators.TensorOperators
    x.to(...), x.backward(), x.storage_offset()    defined below
"""
from __future__ import annotations

import inspect

from . import autograd, ops
from ._operators import TensorOperators
from .backends import dispatch
from .ops import creation
from .ops.complex import set_imag, set_real
from .tensor import Tensor, parse_to_args

# Tensor methods that are the op of the same name in tinyml.ops: `x.exp()` is `tinyml.exp(x)`.
METHOD_OPS = (
    # elementwise
    "add sub mul div true_divide floor_divide remainder fmod pow neg negative abs exp exp2 expm1 log log2 "
    "log10 log1p sqrt rsqrt square reciprocal sin cos tan tanh sigmoid relu erf sign floor ceil round trunc "
    "frac clamp clip minimum maximum masked_fill eq ne lt le gt ge logical_and logical_or logical_not "
    "logical_xor bitwise_not bitwise_and bitwise_or bitwise_xor isnan isinf isfinite nan_to_num lerp "
    "addcmul addcdiv "
    # special functions (ops/special.py)
    "asin acos atan arcsin arccos arctan sinh cosh asinh acosh atanh arcsinh arccosh arctanh erfinv atan2 "
    "arctan2 hypot copysign xlogy logit deg2rad rad2deg logaddexp logaddexp2 sinc signbit heaviside "
    # reductions
    "sum mean var std max min amax amin argmax argmin logsumexp prod cumsum cumprod all any norm "
    "var_mean std_mean "
    # movement and indexing
    "reshape view view_as reshape_as permute transpose swapaxes t contiguous squeeze unsqueeze expand "
    "expand_as repeat repeat_interleave flatten unflatten narrow split chunk unbind gather scatter "
    "scatter_add index_select index_add masked_select tril triu flip roll movedim diagonal take_along_dim "
    "clone select nonzero argwhere broadcast_to moveaxis "
    # complex numbers (ops/complex.py)
    "conj conj_physical resolve_conj angle "
    "take index_fill index_fill_ unfold "
    # compositions (ops/composed.py)
    "nansum nanmean diff tile cummax cummin "
    # sorting and order statistics
    "sort argsort msort topk kthvalue median nanmedian unique unique_consecutive bincount histc "
    # sampling
    "multinomial bernoulli exponential_ geometric_ "
    # matmul and nn
    "matmul mm bmm dot outer softmax log_softmax "
    # small matrix ops (ops/matrix_ops.py) and linalg (ops/linalg.py)
    "diag diag_embed diagflat trace kron cross addmm baddbmm addbmm rot90 isclose allclose det slogdet "
    "inverse clamp_min clamp_max count_nonzero "
    # in-place
    "add_ sub_ mul_ div_ pow_ zero_ fill_ copy_ masked_fill_ clamp_ clip_ neg_ exp_ sqrt_ "
    "uniform_ normal_ bernoulli_ index_add_ scatter_ scatter_add_ "
    # in-place unary and special functions (ops/unary_inplace.py)
    "abs_ sigmoid_ tanh_ relu_ log_ log2_ log10_ log1p_ exp2_ expm1_ rsqrt_ reciprocal_ square_ sin_ cos_ "
    "tan_ erf_ sign_ floor_ ceil_ round_ trunc_ frac_ nan_to_num_ asin_ acos_ atan_ sinh_ cosh_ asinh_ "
    "acosh_ atanh_ erfinv_ atan2_ hypot_ copysign_ xlogy_ logit_ deg2rad_ rad2deg_ arcsin_ arccos_ arctan_ "
    "arcsinh_ arccosh_ arctanh_ arctan2_ logaddexp_ logaddexp2_ sinc_ heaviside_ clamp_min_ clamp_max_ "
).split()

# Methods only (no tinyml.new_zeros function, as in PyTorch): a tensor of self's dtype and device.
NEW_FACTORIES = ("new_tensor", "new_empty", "new_zeros", "new_ones", "new_full")


def _init_from_data(self, data, dtype=None, device=None, requires_grad: bool = False) -> None:
    """`Tensor(data)` is `tinyml.tensor(data)`: a copy of `data` as a new leaf tensor."""
    arr, dev = creation._to_backend_array(data, dtype, device)
    self._init(arr, dev)
    if requires_grad:
        self.requires_grad_(True)


def to(self, *args, **kwargs) -> Tensor:
    """`to(device)`, `to(dtype)`, `to(device, dtype)`, `to(other_tensor)`, keyword forms, and the
    non_blocking / copy flags (`parse_to_args`). Returns self when nothing changes and copy is
    False; a dtype change is differentiable (cast), and so is a device move."""
    dev, dt, copy = parse_to_args(args, kwargs)
    out = self
    if dt is not None and dt is not self.dtype:
        out = ops.cast(out, dt)
    if dev is not None and dev != self.device:
        out = ops.to_device(out, dev)
    if copy and out is self:
        out = self.clone()
    return out


def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate d(self)/d(leaf) into every reachable leaf's `.grad`: `tinyml.autograd.backward`."""
    if gradient is None and self.dtype.is_complex:  # a complex output has no implicit real gradient (torch)
        raise RuntimeError(f"grad can be implicitly created only for real scalar outputs; got a {self.dtype} "
                           f"tensor of shape {tuple(self.shape)}: call backward() on a real loss (abs, real)")
    autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)


def storage_offset(self) -> int:
    """Offset of the first element in the storage, in elements (the backend array knows it)."""
    return dispatch("storage_offset", self.device.type)(self._data)


def bind() -> None:
    """Attach every method above to Tensor; runs once, when this module loads."""
    missing = [name for name in METHOD_OPS if not hasattr(ops, name)]
    if missing:
        raise ImportError(f"tinyml.tensor_methods: METHOD_OPS names no op in tinyml.ops: {missing}")
    for name in METHOD_OPS:
        setattr(Tensor, name, getattr(ops, name))
    for name in NEW_FACTORIES:
        setattr(Tensor, name, getattr(creation, name))
    for name, fn in vars(TensorOperators).items():
        if inspect.isfunction(fn):
            setattr(Tensor, name, fn)
    Tensor.__init__ = _init_from_data
    for fn in (to, backward, storage_offset):
        setattr(Tensor, fn.__name__, fn)
    # views of a complex tensor's parts; assigning writes into them (z.real = x), as in torch
    Tensor.real, Tensor.imag = property(ops.real, set_real), property(ops.imag, set_imag)


bind()
