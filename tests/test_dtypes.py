"""Type promotion against PyTorch: tinyml.result_type / promote_types and the dtype of binary op
results, for every pair of dtypes, dimensioned and 0-d tensors, and Python scalars on both sides."""
import itertools

import pytest
import torch

import tinyml

DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]
SCALARS = [True, 3, -2, 2.5]
PAIRS = list(itertools.product(DTYPES, DTYPES))


def _tm(dtype, shape):
    return tinyml.ones(shape, dtype=getattr(tinyml, dtype))


def _th(dtype, shape):
    return torch.ones(shape, dtype=getattr(torch, dtype))


def _name(d) -> str:
    return str(d).replace("torch.", "").replace("tinyml.", "")


@pytest.mark.parametrize("a,b", PAIRS)
def test_promote_types(a, b):
    got = tinyml.promote_types(getattr(tinyml, a), getattr(tinyml, b))
    assert _name(got) == _name(torch.promote_types(getattr(torch, a), getattr(torch, b)))


@pytest.mark.parametrize("shape_a,shape_b", [((2,), (2,)), ((2,), ()), ((), (2,)), ((), ())], ids=str)
def test_result_type_tensor_tensor(shape_a, shape_b):
    for a, b in PAIRS:
        want = torch.result_type(_th(a, shape_a), _th(b, shape_b))
        got = tinyml.result_type(_tm(a, shape_a), _tm(b, shape_b))
        assert _name(got) == _name(want), f"{a}{shape_a} with {b}{shape_b}: {got} vs torch {want}"


@pytest.mark.parametrize("shape", [(2,), ()], ids=str)
def test_result_type_tensor_scalar(shape):
    for dtype, s in itertools.product(DTYPES, SCALARS):
        want = torch.result_type(_th(dtype, shape), s)
        assert _name(tinyml.result_type(_tm(dtype, shape), s)) == _name(want), (dtype, shape, s)
        want = torch.result_type(s, _th(dtype, shape))
        assert _name(tinyml.result_type(s, _tm(dtype, shape))) == _name(want), (s, dtype, shape)


def _op_dtype(fn, x, y):
    try:
        return _name(fn(x, y).dtype)
    except (RuntimeError, TypeError) as e:
        return type(e).__name__


OPS = {"add": lambda x, y: x + y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
       "sub": lambda x, y: x - y, "eq": lambda x, y: x == y, "maximum": lambda x, y: x.maximum(y),
       "where": lambda x, y: x.where(x != 0, y), "floor_divide": lambda x, y: x // y,
       "remainder": lambda x, y: x % y, "bitwise_and": lambda x, y: x & y,
       "logical_or": lambda x, y: x.logical_or(y), "minimum": lambda x, y: x.minimum(y),
       "clamp": lambda x, y: x.clamp(min=y)}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("shape_a,shape_b", [((2,), (2,)), ((2,), ()), ((), (2,))], ids=str)
def test_binary_op_result_dtype_tensor_tensor(op, shape_a, shape_b):
    fn = OPS[op]
    for a, b in PAIRS:
        want = _op_dtype(fn, _th(a, shape_a), _th(b, shape_b))
        got = _op_dtype(fn, _tm(a, shape_a), _tm(b, shape_b))
        assert got == want, f"{op}: {a}{shape_a} with {b}{shape_b}: {got} vs torch {want}"


@pytest.mark.parametrize("op", ["add", "mul", "div", "sub", "eq", "pow"])
def test_binary_op_result_dtype_with_scalars(op):
    fn = OPS.get(op, lambda x, y: x ** y)
    for dtype, s in itertools.product(DTYPES, SCALARS):
        for left in (True, False):
            f = fn if left else (lambda x, y, fn=fn: fn(y, x))
            if op == "pow" and not left and dtype == "bool":
                continue  # torch: `3 ** bool_tensor` is int64, a special case we do not mirror
            want = _op_dtype(f, _th(dtype, (2,)), s)
            got = _op_dtype(f, _tm(dtype, (2,)), s)
            assert got == want, f"{op}: {dtype} tensor {'op' if left else 'rop'} {s!r}: {got} vs torch {want}"


@pytest.mark.parametrize("name", DTYPES + ["int16", "int8", "uint8"])
def test_kind_properties_match_torch(name):
    d, t = getattr(tinyml, name), getattr(torch, name)
    assert d.is_floating_point is t.is_floating_point
    assert d.is_bool is (t is torch.bool)
    assert d.is_integer is (not t.is_floating_point and t is not torch.bool)
    assert d.is_signed is t.is_signed
    assert [d.is_bool, d.is_integer, d.is_floating_point].count(True) == 1


def test_category_rank_orders_promotion_like_torch():
    ranked = sorted((getattr(tinyml, n) for n in DTYPES), key=lambda d: d.category_rank)
    assert [d.category_rank for d in (tinyml.bool, tinyml.int64, tinyml.float16)] == [0, 1, 2]
    for low, high in itertools.combinations(ranked, 2):
        if low.category_rank < high.category_rank:  # a higher category wins, whatever the sizes
            want = torch.promote_types(getattr(torch, low.name), getattr(torch, high.name))
            assert _name(tinyml.promote_types(low, high)) == _name(want) == high.name
