"""Issue 18's goal: the one-line idioms of a PyTorch user's first day run unchanged on tinyml.

Each idiom of tests/torch_idioms_list.py runs twice, once with `torch`, `nn`, `F` bound to PyTorch and
once bound to tinyml, on the same inputs (numpy arrays from one seeded generator, turned into tensors by
each library's own `torch.tensor`). Its result is the value of its last expression statement (or of `r`
when the line ends with an assignment). Results are compared by kind: "value" (dtype, shape and values
to rtol 1e-4 / atol 1e-5, NaN equal to NaN), "shape" (dtype and shape, for random or seeded draws whose
streams differ between libraries) or "runs" (it only has to run).
The test asserts that at least 95% of all idioms run and agree, and prints every one that does not; the
known gaps (tests/torch_idioms_list.py KNOWN_GAPS: idioms expected to differ) print apart, with the reason.
"""
import ast
import cmath
import math
import os
import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinyml  # noqa: E402
from tests.torch_idioms_list import IDIOMS, KNOWN_GAPS  # noqa: E402

REQUIRED_SHARE = 0.95


def make_inputs(seed: int = 0) -> dict:
    """The shared inputs, as numpy arrays: every idiom sees the same values under both libraries."""
    rng = np.random.default_rng(seed)
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    spd = rng.standard_normal((4, 4))
    return {
        "x": f(3, 4), "y": f(3, 4), "a": f(4, 5), "v": f(5), "u": f(5), "b3": f(2, 3, 4), "c3": f(2, 4, 5),
        "img": f(2, 3, 8, 8), "seq": f(2, 5, 4), "m": (spd @ spd.T + 4 * np.eye(4)).astype(np.float32),
        "i": rng.integers(0, 5, (3, 4)).astype(np.int64), "lab": rng.integers(0, 4, 3).astype(np.int64),
        "tok": rng.integers(0, 10, (2, 5)).astype(np.int64), "pos": rng.random((3, 4)).astype(np.float32),
        "t01": rng.integers(0, 2, (3, 4)).astype(np.float32), "sig": f(16), "d64": f(3, 4).astype(np.float64),
    }


def make_env(lib, nn, F, arrays: dict, tmpdir: str) -> dict:
    """Names an idiom can use: the library as torch/nn/F, the inputs as its tensors, and a few helpers."""
    env = {"torch": lib, "nn": nn, "F": F, "np": np, "math": math}
    # The names a user imports from submodules; a missing one fails only the idioms that use it.
    optim = getattr(lib, "optim", None)
    data = getattr(getattr(lib, "utils", None), "data", None)
    env["optim"] = optim
    env["lr_scheduler"] = getattr(optim, "lr_scheduler", None)
    env["DataLoader"] = getattr(data, "DataLoader", None)
    env["TensorDataset"] = getattr(data, "TensorDataset", None)
    for name, arr in arrays.items():
        env[name] = lib.tensor(arr)
    env["mask"] = env["x"] > 0
    env["w"] = lib.tensor(arrays["x"], requires_grad=True)
    env["w2"] = lib.tensor(arrays["a"], requires_grad=True)
    env["opt"] = optim.SGD([env["w"]], lr=1.0) if hasattr(optim, "SGD") else None
    env["path"] = os.path.join(tmpdir, f"idiom_{lib.__name__}.pt")  # each library reads back its own file
    return env


def run_idiom(code: str, env: dict):
    """Executes one idiom line; returns its last expression's value, or `r` if it ends in a statement."""
    tree = ast.parse(code, mode="exec")
    last = tree.body[-1]
    if isinstance(last, ast.Expr):
        head = ast.Module(body=tree.body[:-1], type_ignores=[])
        exec(compile(head, "<idiom>", "exec"), env)
        return eval(compile(ast.Expression(last.value), "<idiom>", "eval"), env)
    exec(compile(tree, "<idiom>", "exec"), env)
    return env.get("r")


def _dtype_name(dtype) -> str:
    return str(dtype).split(".")[-1]


def to_plain(obj):
    """Library objects -> plain python/numpy values that can be compared across libraries."""
    if isinstance(obj, (torch.Tensor, tinyml.Tensor)):
        t = obj.detach()
        name = _dtype_name(t.dtype)
        if isinstance(obj, torch.Tensor):
            arr = (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).cpu().numpy()
        else:
            arr = np.asarray(t.numpy())
            if name in ("bfloat16", "float16"):
                arr = arr.astype(np.float32)
        return ("tensor", name, tuple(t.shape), arr)
    if isinstance(obj, (torch.Size, tinyml.Size)):
        return tuple(int(s) for s in obj)
    if isinstance(obj, (torch.dtype, tinyml.dtype)):
        return ("dtype", _dtype_name(obj))
    if isinstance(obj, (torch.device, tinyml.device)):
        return ("device", str(obj))
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (bool, int, float, complex, str, type(None), np.generic)):
        return obj.item() if isinstance(obj, np.generic) else obj
    return ("object", type(obj).__name__)


def compare(expected, actual, kind: str, where: str = "result") -> None:
    """Raises AssertionError naming the first difference between the two plain results."""
    if kind == "runs":
        return
    if isinstance(expected, tuple) and expected and expected[0] == "tensor":
        assert isinstance(actual, tuple) and actual and actual[0] == "tensor", \
            f"{where}: torch gave a tensor, tinyml gave {actual!r:.80}"
        _, edtype, eshape, earr = expected
        _, adtype, ashape, aarr = actual
        assert edtype == adtype, f"{where}: dtype torch {edtype} vs tinyml {adtype}"
        assert eshape == ashape, f"{where}: shape torch {eshape} vs tinyml {ashape}"
        if kind == "value":
            # complex values compare as complex128, so that the imaginary parts count
            wide = np.complex128 if "c" in (earr.dtype.kind, aarr.dtype.kind) else np.float64
            ok = np.allclose(aarr.astype(wide), earr.astype(wide), rtol=1e-4, atol=1e-5, equal_nan=True)
            assert ok, f"{where}: values differ, max |diff| " \
                       f"{np.nanmax(np.abs(aarr.astype(wide) - earr.astype(wide)))}"
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: torch gave a dict, tinyml gave {type(actual).__name__}"
        assert list(expected) == list(actual), \
            f"{where}: keys torch {list(expected)} vs tinyml {list(actual)}"
        for k in expected:
            compare(expected[k], actual[k], kind, f"{where}[{k!r}]")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), \
            f"{where}: torch gave {len(expected)} items, tinyml gave {actual!r:.80}"
        for n, (e, a) in enumerate(zip(expected, actual)):
            compare(e, a, kind, f"{where}[{n}]")
        return
    if isinstance(expected, float) and kind == "value":
        assert isinstance(actual, (int, float)), f"{where}: torch gave {expected}, tinyml gave {actual!r:.80}"
        assert math.isclose(expected, actual, rel_tol=1e-4, abs_tol=1e-5) or (
            math.isnan(expected) and math.isnan(actual)), f"{where}: torch {expected} vs tinyml {actual}"
        return
    if isinstance(expected, float):
        assert isinstance(actual, float), f"{where}: torch gave a float, tinyml gave {actual!r:.80}"
        return
    if isinstance(expected, complex):
        assert isinstance(actual, complex), f"{where}: torch gave a complex, tinyml gave {actual!r:.80}"
        assert kind != "value" or cmath.isclose(expected, actual, rel_tol=1e-4, abs_tol=1e-5), \
            f"{where}: torch {expected} vs tinyml {actual}"
        return
    if kind == "shape" and isinstance(expected, (int, bool)) and not isinstance(expected, bool):
        assert isinstance(actual, int), f"{where}: torch gave an int, tinyml gave {actual!r:.80}"
        return
    assert expected == actual, f"{where}: torch {expected!r:.80} vs tinyml {actual!r:.80}"


def check_idiom(code: str, kind: str, arrays: dict, tmpdir: str):
    """None if the idiom runs and agrees; otherwise the error text."""
    torch.manual_seed(0)
    expected = to_plain(run_idiom(code, make_env(torch, torch.nn, torch.nn.functional, arrays, tmpdir)))
    tinyml.manual_seed(0)
    try:
        actual = to_plain(run_idiom(code, make_env(tinyml, tinyml.nn, tinyml.nn.functional, arrays, tmpdir)))
        compare(expected, actual, kind)
    except Exception as err:  # noqa: BLE001  (any failure of an idiom is what this test counts)
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
    return None


def test_idiom_list_is_well_formed():
    codes = [code for code, _ in IDIOMS]
    assert len(codes) >= 300
    assert len(set(codes)) == len(codes), "an idiom is listed twice"
    assert {kind for _, kind in IDIOMS} <= {"value", "shape", "runs"}
    assert set(KNOWN_GAPS) <= set(codes), "KNOWN_GAPS names an idiom that is not in IDIOMS"
    assert all(reason.strip() for reason in KNOWN_GAPS.values()), "every known gap says why"


def test_idioms_run_under_torch():
    """Every idiom is real PyTorch: it runs with torch itself (guards against typos in the list)."""
    arrays = make_inputs()
    with tempfile.TemporaryDirectory() as tmpdir:
        broken = []
        for code, _ in IDIOMS:
            torch.manual_seed(0)
            try:
                to_plain(run_idiom(code, make_env(torch, torch.nn, torch.nn.functional, arrays, tmpdir)))
            except Exception as err:  # noqa: BLE001
                broken.append(f"{code}  ->  {type(err).__name__}: {err}")
    assert not broken, "idioms that PyTorch itself rejects:\n" + "\n".join(broken)


def test_share_of_idioms_that_run_and_agree(capsys):
    arrays = make_inputs()
    failures = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for code, kind in IDIOMS:
            error = check_idiom(code, kind, arrays, tmpdir)
            if error is not None:
                failures.append((code, error))
    share = 1 - len(failures) / len(IDIOMS)
    known = [f for f in failures if f[0] in KNOWN_GAPS]
    report = [f"{len(IDIOMS) - len(failures)} of {len(IDIOMS)} idioms run and agree ({share:.1%})"]
    report += [f"  FAIL {code}\n       {error}" for code, error in failures if code not in KNOWN_GAPS]
    report += [f"  KNOWN GAP {code}\n       {error}\n       why: {KNOWN_GAPS[code]}" for code, error in known]
    fixed = sorted(set(KNOWN_GAPS) - {code for code, _ in failures})
    report += [f"  KNOWN GAP NOW AGREES (remove it from KNOWN_GAPS): {code}" for code in fixed]
    with capsys.disabled():
        print("\n" + "\n".join(report))
    assert share >= REQUIRED_SHARE, "\n".join(report)


@pytest.mark.parametrize("expected, actual", [
    (torch.tensor([1.0, 2.0]), tinyml.tensor([1.0, 2.5])),            # values
    (torch.tensor([1.0, 2.0]), tinyml.tensor([1.0, 2.0], dtype=tinyml.float64)),  # dtype
    (torch.zeros(2, 1), tinyml.zeros(1, 2)),                          # shape
    ((torch.zeros(2), torch.zeros(2)), (tinyml.zeros(2),)),           # item count
    ({"a": torch.zeros(1)}, {"b": tinyml.zeros(1)}),                  # keys
    (torch.zeros(2), [0.0, 0.0]),                                     # a list where a tensor is expected
    (0.5, 0.6), (3, 4), (torch.Size([2, 3]), tinyml.Size([3, 2])), (torch.float32, tinyml.int64),
])
def test_compare_reports_each_kind_of_difference(expected, actual):
    with pytest.raises(AssertionError):
        compare(to_plain(expected), to_plain(actual), "value")


def test_compare_accepts_agreeing_results_and_nan():
    nan = float("nan")
    compare(to_plain((torch.tensor([1.0, nan]), torch.Size([2]))),
            to_plain((tinyml.tensor([1.0 + 1e-7, nan]), tinyml.Size([2]))), "value")
    compare(to_plain(torch.randn(2, 3)), to_plain(tinyml.randn(2, 3)), "shape")
