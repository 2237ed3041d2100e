"""Reference elementwise kernels (numpy). Binary kernels take two same-shape arrays or an array
and a Python scalar on either side; the dtype is already the result dtype."""
import numpy as np

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "tanh", "tanh_backward", "sigmoid",
           "sigmoid_backward", "relu", "relu_backward", "where", "eq", "ne", "lt", "le", "gt", "ge"]


def _dtype_of(a, b):
    return a.dtype if isinstance(a, np.ndarray) else b.dtype


def add(a, b):
    return np.add(a, b, dtype=_dtype_of(a, b))


def sub(a, b):
    return np.subtract(a, b, dtype=_dtype_of(a, b))


def mul(a, b):
    return np.multiply(a, b, dtype=_dtype_of(a, b))


def div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(a, b, dtype=_dtype_of(a, b))


def neg(x):
    return np.negative(x)


def pow(a, b):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.power(a, b, dtype=_dtype_of(a, b))


def exp(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


def log(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def tanh(x):
    return np.tanh(x)


def tanh_backward(y, g):
    """g (1 - y^2)"""
    return g * (1 - y * y)


def sigmoid(x):
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(y, g):
    """g y (1 - y)"""
    return g * y * (1 - y)


def relu(x):
    return np.maximum(x, 0).astype(x.dtype, copy=False)


def relu_backward(y, g):
    return np.where(y > 0, g, 0).astype(g.dtype, copy=False)


def eq(a, b):
    return np.equal(a, b)


def ne(a, b):
    return np.not_equal(a, b)


def lt(a, b):
    return np.less(a, b)


def le(a, b):
    return np.less_equal(a, b)


def gt(a, b):
    return np.greater(a, b)


def ge(a, b):
    return np.greater_equal(a, b)


def where(cond, a, b):
    """cond ? a : b with one of a, b possibly a Python scalar; the dtype is the tensor operand's."""
    dtype = a.dtype if isinstance(a, np.ndarray) else b.dtype
    return np.where(cond, a, b).astype(dtype, copy=False)
