"""Python operators of Tensor (`a + b`, `a @ b`, `a[i]`, `a += b`, comparisons, ...).

Each delegates to the op of the same meaning in `tinyml.ops`. `TensorOperators` is a namespace,
never instantiated: tinyml/tensor_methods.py copies its functions onto Tensor, so `x * b` runs
`TensorOperators.__mul__`, which is `tinyml.ops.elementwise.mul` itself (the common operators are
the op functions, not wrappers around them: a Python frame per operator saved).
"""
from . import ops


class TensorOperators:
    """Tensor's operator methods (`self` is a Tensor once bound)."""

    __add__ = ops.add  # the op itself: one Python frame less per operator

    def __radd__(self, other):
        return ops.add(other, self)

    __sub__ = ops.sub  # the op itself: one Python frame less per operator

    def __rsub__(self, other):
        return ops.sub(other, self)

    __mul__ = ops.mul  # the op itself: one Python frame less per operator

    def __rmul__(self, other):
        return ops.mul(other, self)

    __truediv__ = ops.div  # the op itself: one Python frame less per operator

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __floordiv__(self, other):
        return ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return ops.floor_divide(other, self)

    def __mod__(self, other):
        return ops.remainder(self, other)

    def __rmod__(self, other):
        return ops.remainder(other, self)

    __pow__ = ops.pow  # the op itself: one Python frame less per operator

    def __rpow__(self, other):
        return ops.pow(other, self)

    __matmul__ = ops.matmul  # the op itself: one Python frame less per operator

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    __neg__ = ops.neg

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __invert__(self):
        return ops.bitwise_not(self)

    def __and__(self, other):
        return ops.bitwise_and(self, other)

    def __or__(self, other):
        return ops.bitwise_or(self, other)

    def __xor__(self, other):
        return ops.bitwise_xor(self, other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __eq__(self, other):
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def __setitem__(self, index, value):
        ops.setitem_(self, index, value)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def where(self, condition, other):
        """`x.where(c, y)` is `tinyml.where(c, x, y)` (self is the value taken where c holds)."""
        return ops.where(condition, self, other)
