"""The complex dtypes: names and flags, promotion against torch (promote_types and result_type with
tensors, 0-d tensors and Python scalars), creation, printing, casts, and the clear errors of ops
that have no complex meaning (and of complex tensors off the cpu device)."""
import itertools
import warnings

import numpy as np
import pytest
import torch

import tinyml

NAMES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
         "complex64", "complex128"]


def _t(name):
    return getattr(tinyml, "bool_" if name == "bool" else name)


def test_dtype_flags_aliases_and_conversions():
    c64, c128 = tinyml.complex64, tinyml.complex128
    assert tinyml.cfloat is c64 and tinyml.cdouble is c128
    assert c64.is_complex and not c64.is_floating_point and c64.is_signed and c64.itemsize == 8
    assert not tinyml.float32.is_complex
    assert c64.to_real() is tinyml.float32 and c128.to_real() is tinyml.float64
    assert tinyml.float32.to_complex() is c64 and tinyml.float64.to_complex() is c128
    assert tinyml.float32.to_real() is tinyml.float32 and c64.to_complex() is c64
    with pytest.raises(RuntimeError, match="int64"):
        tinyml.int64.to_complex()
    assert tinyml.finfo(c64).eps == torch.finfo(torch.complex64).eps
    assert repr(c64) == "tinyml.complex64"
    import pickle
    assert pickle.loads(pickle.dumps(c128)) is c128


@pytest.mark.parametrize("a,b", list(itertools.combinations_with_replacement(NAMES, 2)))
def test_promote_types_matches_torch(a, b):
    want = torch.promote_types(getattr(torch, a), getattr(torch, b))
    assert tinyml.promote_types(_t(a), _t(b)).name == str(want).split(".")[1]


SCALARS = [True, 2, 2.5, 1 + 2j]


@pytest.mark.parametrize("dim_dtype", ["bool", "int32", "int64", "float32", "float64", "complex64",
                                       "complex128"])
@pytest.mark.parametrize("other", ["int64", "float64", "complex64", "complex128"] + SCALARS, ids=str)
def test_result_type_matches_torch(dim_dtype, other):
    ours, theirs = [tinyml.ones(2, dtype=_t(dim_dtype))], [torch.ones(2, dtype=getattr(torch, dim_dtype))]
    if isinstance(other, str):  # a 0-d tensor
        ours.append(tinyml.tensor(1, dtype=_t(other)))
        theirs.append(torch.tensor(1, dtype=getattr(torch, other)))
    else:
        ours.append(other)
        theirs.append(other)
    assert tinyml.result_type(*ours).name == str(torch.result_type(*theirs)).split(".")[1]


def test_python_complex_takes_the_default_complex_dtype():
    assert tinyml.tensor([1 + 2j]).dtype is tinyml.complex64
    assert tinyml.tensor(1j).dtype is tinyml.complex64
    assert (tinyml.ones(2) * 1j).dtype is tinyml.complex64
    assert tinyml.full((2,), 1 + 1j).dtype is tinyml.complex64
    assert tinyml.get_default_complex_dtype() is tinyml.complex64
    tinyml.set_default_dtype(tinyml.float64)
    try:
        assert tinyml.tensor([1 + 2j]).dtype is tinyml.complex128
        assert tinyml.get_default_complex_dtype() is tinyml.complex128
    finally:
        tinyml.set_default_dtype(tinyml.float32)


def test_creation():
    a = np.array([1 + 2j, 3 - 1j], dtype=np.complex128)
    t = tinyml.from_numpy(a)
    assert t.dtype is tinyml.complex128 and np.shares_memory(t.numpy(), a)
    assert tinyml.tensor(a.astype(np.complex64)).dtype is tinyml.complex64  # numpy arrays keep their dtype
    assert tinyml.zeros(2, 3, dtype=tinyml.complex64).numpy().dtype == np.complex64
    assert tinyml.ones(2, dtype=tinyml.cdouble).tolist() == [1 + 0j, 1 + 0j]
    assert tinyml.tensor([1, 2], dtype=tinyml.complex64).tolist() == [1 + 0j, 2 + 0j]
    assert tinyml.zeros_like(t).dtype is tinyml.complex128 and t.new_ones(3).dtype is tinyml.complex128
    assert t.is_complex() and tinyml.is_complex(t) and not tinyml.ones(1).is_complex() and not t.is_conj()
    assert t[0].item() == 1 + 2j and complex(t[1]) == 3 - 1j


def test_randn_and_rand_complex():
    tinyml.manual_seed(0)
    z = tinyml.randn(200_000, dtype=tinyml.complex64)
    assert z.dtype is tinyml.complex64
    re, im = z.real.numpy(), z.imag.numpy()
    # torch's complex randn: real and imaginary parts each N(0, 1/2), so E|z|^2 = 1
    assert abs(re.var() - 0.5) < 0.01 and abs(im.var() - 0.5) < 0.01 and abs(np.corrcoef(re, im)[0, 1]) < 0.01
    u = tinyml.rand(100_000, dtype=tinyml.complex128)
    assert 0 <= u.real.numpy().min() and u.imag.numpy().max() < 1 and abs(u.imag.numpy().mean() - 0.5) < 0.01
    assert tinyml.randn_like(z).dtype is tinyml.complex64


@pytest.mark.parametrize("values", [[1 + 2j, 3 - 4j], [[-10 + 5j, 2 + 10j], [1.5 - 0.25j, 0j]],
                                    [1e-5 + 1j, 100 + 0j], 1 + 2j,
                                    [complex("nan+1j"), complex(float("inf"), 2)], [0.123456 - 7j]])
def test_printing_matches_torch(values):
    assert repr(tinyml.tensor(values)) == repr(torch.tensor(values)).replace("torch.", "tinyml.")


def test_printing_names_non_default_dtype_and_grad():
    z = tinyml.tensor([1 + 2j], dtype=tinyml.complex128, requires_grad=True)
    assert repr(z) == "tensor([1.+2.j], dtype=tinyml.complex128, requires_grad=True)"
    assert repr(z * 2).endswith("grad_fn=<MulBackward>)")


def test_casts():
    z = tinyml.tensor([1.5 + 2j, -3 - 1j])
    assert z.to(tinyml.complex128).dtype is tinyml.complex128
    assert z.type(tinyml.cdouble).dtype is tinyml.complex128
    r = tinyml.tensor([1.0, 2.0]).to(tinyml.complex64)
    assert r.tolist() == [1 + 0j, 2 + 0j]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert z.to(tinyml.float32).tolist() == [1.5, -3.0]  # the real part, with torch's warning
    assert any("discards the imaginary part" in str(w.message) for w in caught)


def test_real_of_a_real_tensor_and_imag_errors():
    x = tinyml.ones(3)
    assert tinyml.real(x) is x and x.conj() is x
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
        x.imag
    with pytest.raises(RuntimeError, match="view_as_real is only supported for complex tensors"):
        tinyml.view_as_real(x)
    with pytest.raises(RuntimeError, match="last dimension of size 2"):
        tinyml.view_as_complex(tinyml.ones(3, 3))
    with pytest.raises(RuntimeError, match="stride 1"):
        tinyml.view_as_complex(tinyml.ones(2, 3).t()[:, :2])
    with pytest.raises(RuntimeError, match="float32 and float64"):
        tinyml.view_as_complex(tinyml.ones(3, 2, dtype=tinyml.int64))
    with pytest.raises(RuntimeError, match="same dtype"):
        tinyml.complex(tinyml.ones(2), tinyml.ones(2, dtype=tinyml.float64))
    with pytest.raises(TypeError, match="int64"):
        tinyml.complex(tinyml.ones(2, dtype=tinyml.int64), tinyml.ones(2, dtype=tinyml.int64))


Z = tinyml.tensor([1 + 2j, 3 - 4j])
REFUSED = {
    "lt": lambda: Z < Z, "gt": lambda: Z > 0, "le": lambda: Z <= 1, "ge": lambda: Z >= Z,
    "max": lambda: Z.max(), "min": lambda: Z.min(0), "amax": lambda: Z.amax(), "argmax": lambda: Z.argmax(),
    "maximum": lambda: tinyml.maximum(Z, Z), "clamp": lambda: Z.clamp(0, 1), "relu": lambda: Z.relu(),
    "erf": lambda: Z.erf(), "logit": lambda: Z.logit(),
    "softmax": lambda: Z.softmax(0), "floor": lambda: Z.floor(), "round": lambda: Z.round(),
    "sign": lambda: Z.sign(), "remainder": lambda: Z % 2, "floor_divide": lambda: Z // 2,
    "cumsum": lambda: Z.cumsum(0), "prod": lambda: Z.prod(), "var": lambda: Z.var(), "std": lambda: Z.std(),
    "sort": lambda: tinyml.sort(Z), "topk": lambda: tinyml.topk(Z, 1), "median": lambda: Z.median(),
    "atan2": lambda: tinyml.atan2(Z, Z), "hypot": lambda: tinyml.hypot(Z, Z),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_ops_without_complex_meaning_raise_naming_op_and_dtype(name):
    with pytest.raises(TypeError, match=rf"{name}: not supported for complex tensors \(got dtype "
                                        rf"(tinyml\.)?complex64\)"):
        REFUSED[name]()


def test_isclose_compares_both_parts_of_complex_numbers():
    a = tinyml.tensor([1 + 2j, 3 + 0j, 1 + 1j])
    b = tinyml.tensor([1 + 2.0000001j, 3 + 1j, 1 + 1j])
    expected = torch.isclose(torch.tensor(a.numpy()), torch.tensor(b.numpy()))
    assert tinyml.isclose(a, b).tolist() == expected.tolist()
    assert not tinyml.allclose(a, b) and tinyml.allclose(a, a)


def test_pow_with_a_complex_tensor_exponent_is_refused():
    with pytest.raises(TypeError, match="tensor power"):
        Z ** Z


def test_complex_tensors_stay_on_the_cpu():
    with pytest.raises(TypeError, match="cpu device only: got dtype tinyml.complex64 for device cuda"):
        Z.to("cuda")
    with pytest.raises(TypeError, match="cpu device only"):
        tinyml.tensor([1j], device="cuda")
    with pytest.raises(TypeError, match="cpu device only"):
        tinyml.zeros(2, dtype=tinyml.complex64, device="cuda")


def test_float_tensors_are_unchanged():
    x = tinyml.tensor([1.0, -2.0], requires_grad=True)
    y = (x * 2).exp().sum() + x.abs().sum()
    assert y.dtype is tinyml.float32 and repr(x) == "tensor([ 1., -2.], requires_grad=True)"
    y.backward()
    assert x.grad.dtype is tinyml.float32


@pytest.mark.parametrize("ord", [2, 1, float("inf"), 3])
def test_vector_norm_of_complex_is_the_norm_of_the_moduli_with_torchs_gradient(ord):
    a = (np.random.default_rng(1).standard_normal((4, 3, 2)) @ [1, 1j]).astype(np.complex64)
    z, zt = tinyml.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    n, nt = tinyml.linalg.vector_norm(z, ord, dim=1), torch.linalg.vector_norm(zt, ord, dim=1)
    assert n.dtype is tinyml.float32
    n.sum().backward()
    nt.sum().backward()
    np.testing.assert_allclose(n.detach().numpy(), nt.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(z.grad.numpy(), zt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_linalg_factorizations_refuse_complex_by_name():
    with pytest.raises(RuntimeError, match="linalg.inv: .*complex64"):
        tinyml.linalg.inv(tinyml.zeros(2, 2, dtype=tinyml.complex64))
