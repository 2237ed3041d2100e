"""The cpu matmul kernels' C++ slices (csrc/matmul.cpp over numpy's OpenBLAS): against the numpy
reference and PyTorch, on 1 and 2 threads, odd shapes, strided operands, NaN/inf, the Python-thread
fallback when the BLAS symbols are missing, and the bindings' argument checks.

Small shapes reach the C++ path by lowering the adapter's split threshold (`small_split`)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from cpu_kernel_helpers import needs_C
from helpers import check_op

import tinyml
import tinyml.nn.functional as F
from tinyml.testing import assert_close, gradcheck

pytestmark = needs_C

DTYPES = [np.float32, np.float64]


@pytest.fixture
def cpu():
    from tinyml.backends.cpu import matmul

    assert matmul._native, f"the C++ GEMMs are not in use: {matmul.blas_status}"
    return matmul


@pytest.fixture
def ref():
    from tinyml.backends.reference import matmul

    return matmul


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = tinyml.get_num_threads()
    tinyml.set_num_threads(request.param)
    yield request.param
    tinyml.set_num_threads(before)


@pytest.fixture
def small_split(cpu, monkeypatch):
    """Split every product, however small, over the threads (the C++ path for tiny shapes)."""
    monkeypatch.setattr(cpu, "_MIN_FLOPS_PER_THREAD", 1)


def _rand(rng, shape, dt):
    return rng.standard_normal(shape).astype(dt)


def test_blas_was_found(cpu):
    assert "C++ slices" in cpu.blas_status and "float32" in cpu.blas_status
    from tinyml import _C

    assert _C.matmul_has_blas() == (True, True)


# -- bit for bit: each slice is the cblas call numpy makes, restricted to its rows ---------------------
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("m,k,n", [(768, 128, 512), (301, 160, 96), (97, 64, 128)])
def test_linear_and_its_backward_equal_the_reference_bit_for_bit(cpu, ref, threads, dt, m, k, n):
    # output widths that are whole register tiles of the BLAS kernel: OpenBLAS then sums every
    # element in one order whatever the rows of the call
    rng = np.random.default_rng(m)
    x, w, b, g = _rand(rng, (m, k), dt), _rand(rng, (n, k), dt), _rand(rng, n, dt), _rand(rng, (m, n), dt)
    np.testing.assert_array_equal(cpu.linear(x, w, b), ref.linear(x, w, b))
    np.testing.assert_array_equal(cpu.linear(x, w, None), ref.linear(x, w, None))
    for need_input, need_weight, need_bias in [(True, True, True), (True, True, False), (True, False, True),
                                               (False, True, True), (False, True, False)]:
        args = (g, x if need_weight else None, w if need_input else None, need_input, need_weight, need_bias)
        for got, want in zip(cpu.linear_backward(*args), ref.linear_backward(*args)):
            assert (got is None) == (want is None)
            if want is not None:
                np.testing.assert_array_equal(got, want)
    assert cpu.linear_backward(g, None, None, False, False) == (None, None, None) == ref.linear_backward(
        g, None, None, False, False)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "rows 0"])
def test_linear_backward_bias_gradient_is_numpys_sum_bit_for_bit(cpu, ref, threads, dt, layout):
    # db is summed in C++ on the thread of dW for a C-contiguous g, in numpy's order: 0, then each row;
    # signed zeros, NaN and inf included. numpy's own sum serves other layouts (its order differs there)
    rng = np.random.default_rng(7)
    m = 0 if layout == "rows 0" else 768
    g, x, w = _rand(rng, (m, 512), dt), _rand(rng, (m, 128), dt), _rand(rng, (512, 128), dt)
    if m:
        g[:, 1] = -0.0
        g[0, 2:5] = -0.0
        g[5, 7], g[6, 9], g[7, 9], g[8, 11] = np.nan, np.inf, -np.inf, np.inf
    if layout == "F":
        g = np.asfortranarray(g)
    got = cpu.linear_backward(g, x, w, True, True, True)
    want = ref.linear_backward(g, x, w, True, True, True)
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_array_equal(np.signbit(got[2]), np.signbit(want[2]))
    if m:
        assert np.signbit(got[2][1]) == np.signbit(np.sum(g[:, 1]))  # a column of -0.0 sums to +0.0 in numpy


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("a_shape,b_shape", [((4, 96, 64), (4, 64, 128)), ((2, 1, 96, 64), (3, 64, 128)),
                                             ((96, 64), (5, 64, 128)), ((3, 200, 64), (64, 128))],
                         ids=str)
def test_matmul_batched_and_broadcast_equal_the_reference(cpu, ref, threads, dt, a_shape, b_shape):
    rng = np.random.default_rng(1)
    a, b = _rand(rng, a_shape, dt), _rand(rng, b_shape, dt)
    np.testing.assert_array_equal(cpu.matmul(a, b), ref.matmul(a, b))
    # transposed operands (BLAS reads them in place) and strided ones (copied first)
    at = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    bt = np.ascontiguousarray(np.swapaxes(b, -1, -2)).swapaxes(-1, -2)
    np.testing.assert_array_equal(cpu.matmul(at, bt), ref.matmul(at, bt))
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dt)
    wide[..., ::2] = a
    np.testing.assert_array_equal(cpu.matmul(wide[..., ::2], b), ref.matmul(a, b))


# -- odd shapes, every one through the C++ slices --------------------------------------------------
ODD = [((7, 5), (5, 3)), ((1, 9), (9, 4)), ((9, 4), (4, 1)), ((0, 4), (4, 3)), ((3, 0), (0, 5)),
       ((5, 4), (4, 0)), ((3, 5, 4), (4, 6)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 4), (3, 4, 1)),
       ((2, 0, 4), (2, 4, 3)), ((0, 3, 4), (4, 2))]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("a_shape,b_shape", ODD, ids=str)
def test_odd_shapes_match_numpy(cpu, ref, threads, small_split, dt, a_shape, b_shape):
    rng = np.random.default_rng(2)
    a, b = _rand(rng, a_shape, dt), _rand(rng, b_shape, dt)
    got, want = cpu.matmul(a, b), ref.matmul(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert_close(got, want, kind="reduction", dtype=np.dtype(dt))
    if a.ndim == 2 and b.ndim == 2:
        bias = _rand(rng, b_shape[1], dt)
        assert_close(cpu.linear(a, b.T, bias), ref.linear(a, b.T, bias), kind="reduction", dtype=np.dtype(dt))


# rows fewer than, equal to and not a multiple of the threads
@pytest.mark.parametrize("m", [1, 2, 3, 5, 17, 33])
def test_rows_split_any_way_equal_one_call(cpu, threads, small_split, m):
    from tinyml import _C

    rng = np.random.default_rng(m)
    a, b = _rand(rng, (m, 40), np.float64), _rand(rng, (40, 24), np.float64)
    for min_flops in (0.0, 1.0, 1e12):  # every thread gets rows, or one call does all
        out = np.full((m, 24), np.nan)
        _C.matmul(a, b, out, None, min_flops, 1)  # slices on any row: equal up to rounding
        np.testing.assert_allclose(out, a @ b, rtol=1e-13, atol=1e-13)


def test_nan_and_inf_propagate_as_numpys_blas(cpu, threads, small_split):
    rng = np.random.default_rng(3)
    a, b = _rand(rng, (33, 16), np.float32), _rand(rng, (16, 20), np.float32)
    a[3, 4], a[10, 0], b[2, 7], b[5, 11] = np.nan, np.inf, -np.inf, np.nan
    with np.errstate(invalid="ignore"):
        got, want = cpu.matmul(a, b), a @ b
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)


def test_a_times_its_own_transpose_stays_numpys(cpu, ref, threads):
    # numpy computes a @ a.T with syrk: the adapter leaves that product to numpy
    a = _rand(np.random.default_rng(4), (256, 96), np.float32)
    np.testing.assert_array_equal(cpu.matmul(a, a.T), ref.matmul(a, a.T))


# -- through the ops, against PyTorch ------------------------------------------------------------
@pytest.mark.parametrize("x_shape", [(37, 24), (3, 13, 24), (1, 24), (0, 24)])
def test_linear_op_matches_torch(threads, small_split, x_shape):
    check_op([x_shape, (20, 24), (20,)], lambda x, w, b: F.linear(x, w, b),
             lambda x, w, b: TF.linear(x, w, b), kind="reduction")
    check_op([x_shape, (20, 24)], lambda x, w: F.linear(x, w), lambda x, w: TF.linear(x, w), kind="reduction",
             dtype="float64")


@pytest.mark.parametrize("shapes", [[(5, 9, 12), (5, 12, 7)], [(2, 1, 9, 12), (3, 12, 7)],
                                    [(9, 12), (12, 7)]], ids=str)
def test_matmul_op_matches_torch(threads, small_split, shapes):
    check_op(shapes, lambda a, b: a @ b, kind="reduction")
    check_op(shapes, lambda a, b: a @ b, kind="reduction", noncontiguous=True, dtype="float64")


def test_gradcheck_through_the_slices(small_split):
    rng = np.random.default_rng(5)
    x = tinyml.tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    w, b = (tinyml.tensor(rng.standard_normal(s), requires_grad=True) for s in [(3, 2), (3,)])
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])
    y = tinyml.tensor(rng.standard_normal((1, 2, 3)), requires_grad=True)
    assert gradcheck(lambda x, y: x @ y, [x, y])


# -- the fallback: no ILP64 cblas in the loaded BLAS -----------------------------------------------
def test_missing_symbols_fall_back_to_python_threads(cpu, ref, monkeypatch):
    from tinyml import _C

    rng = np.random.default_rng(6)
    x, w, g = (_rand(rng, s, np.float32) for s in [(300, 160), (96, 160), (300, 96)])
    b = _rand(rng, 96, np.float32)
    a3, b3 = _rand(rng, (3, 96, 64), np.float64), _rand(rng, (3, 64, 128), np.float64)
    monkeypatch.setitem(cpu._GEMM_SYMBOLS, "sgemm", "no_such_cblas_sgemm64_")
    monkeypatch.setitem(cpu._GEMM_SYMBOLS, "dgemm", "no_such_cblas_dgemm64_")
    before = tinyml.get_num_threads()
    try:
        assert "Python thread slices" in cpu.load_blas()
        assert cpu._native == frozenset() and _C.matmul_has_blas() == (False, False)
        with pytest.raises(ValueError, match="no BLAS sgemm was set"):
            _C.matmul(x, w.T, np.empty((300, 96), np.float32), None, 0.0, 8)
        for n in (1, 2):
            tinyml.set_num_threads(n)
            np.testing.assert_array_equal(cpu.linear(x, w, b), ref.linear(x, w, b))
            got, want = cpu.linear_backward(g, x, w, True, True), ref.linear_backward(g, x, w, True, True)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(cpu.matmul(a3, b3), ref.matmul(a3, b3))
    finally:
        tinyml.set_num_threads(before)
        monkeypatch.undo()
        assert "C++ slices" in cpu.load_blas()


# -- the bindings check before they touch memory ----------------------------------------------------
def test_matmul_binding_rejects_bad_arguments():
    from tinyml import _C

    a, b = np.ones((4, 3), np.float32), np.ones((3, 5), np.float32)
    ok = np.empty((4, 5), np.float32)
    bad = [
        ((a, b, np.empty((4, 6), np.float32), None), ValueError, r"out: expected shape \(4, 5\), got \(4, 6"),
        ((a, b, np.empty((5, 4), np.float32).T, None), ValueError, "C-contiguous"),
        ((a, b, np.empty((4, 5), np.float64), None), TypeError, "out: expected dtype float32, got float64"),
        ((a, b, [[0.0] * 5] * 4, None), TypeError, "out: expected a numpy array, got list"),
        ((a, np.ones((4, 5), np.float32), ok, None), ValueError, "inner dims"),
        ((a, b.astype(np.float64), ok, None), TypeError, "b: expected dtype float32"),
        ((a, b, ok, np.ones(4, np.float32)), ValueError, r"bias of shape \(5,\), got \(4,\)"),
        ((np.ones((2, 4, 3), np.float32), np.ones((3, 3, 5), np.float32), np.empty((2, 4, 5), np.float32),
          None), ValueError, "batch dims"),
        ((np.ones((8, 6), np.float32)[::2, ::2], b, ok, None), ValueError, "not readable by BLAS"),
        ((a.astype(np.int64), b, ok, None), TypeError, "expected float32 or float64, got int64"),
        ((np.ones(3, np.float32), b, ok, None), ValueError, "rank >= 2"),
    ]
    read_only = np.empty((4, 5), np.float32)
    read_only.flags.writeable = False
    bad.append(((a, b, read_only, None), ValueError, "writeable"))
    for args, err, pattern in bad:
        with pytest.raises(err, match=pattern):
            _C.matmul(*args, 0.0, 8)


def test_linear_backward_binding_rejects_bad_arguments():
    from tinyml import _C

    g, x, w = np.ones((6, 4), np.float32), np.ones((6, 3), np.float32), np.ones((4, 3), np.float32)
    dx, dw, db = np.empty((6, 3), np.float32), np.empty((4, 3), np.float32), np.empty(4, np.float32)
    cases = [
        ((g, x, w, np.empty((6, 4), np.float32), dw, db), ValueError, r"dx: expected shape \(6, 3\)"),
        ((g, x, w, dx, np.empty((3, 4), np.float32), db), ValueError, r"dw: expected shape \(4, 3\)"),
        ((g, x, w, dx, dw, np.empty(6, np.float32)), ValueError, r"db: expected shape \(4,\)"),
        ((g, x, w, dx, dw, db.astype(np.float64)), TypeError, "db: expected dtype float32"),
        ((g, np.ones((5, 3), np.float32), w, dx, dw, db), ValueError, "x of shape"),
        ((g, x, np.ones((5, 3), np.float32), dx, dw, db), ValueError, "weight of shape"),
        ((g, x, w.astype(np.float64), dx, dw, db), TypeError, "weight: expected dtype float32"),
        ((np.ones((6, 4, 1), np.float32), x, w, dx, dw, db), ValueError, "2-D g"),
        ((g, x, w, dx.tolist(), dw, db), TypeError, "dx: expected a numpy array"),
    ]
    for args, err, pattern in cases:
        for side_by_side in (False, True):
            with pytest.raises(err, match=pattern):
                _C.linear_backward(*args, side_by_side, 0.0, 8)
    _C.linear_backward(g, x, w, dx, dw, db, True, 0.0, 8)  # the good call runs
    np.testing.assert_array_equal(dx, g @ w)
    np.testing.assert_array_equal(dw, g.T @ x)
    np.testing.assert_array_equal(db, g.sum(0))


# -- a GPT step splits its GEMMs, and stays the same on 1 and 2 threads ------------------------------
def test_gpt_training_is_bit_identical_on_1_and_2_threads():
    from tinyml.models import GPT, GPTConfig

    def train(n_threads):
        tinyml.set_num_threads(n_threads)
        tinyml.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=1, n_head=4, n_embd=128,
                              activation="gelu_new"))
        opt = tinyml.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        rng = np.random.default_rng(0)
        losses = []
        for _ in range(2):  # (12 x 64) rows of 128: every linear is large enough to be split
            x, y = rng.integers(0, 65, (12, 64)), rng.integers(0, 65, (12, 64))
            _, loss = model(tinyml.tensor(x), tinyml.tensor(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, {k: v.numpy().copy() for k, v in model.state_dict().items()}

    before = tinyml.get_num_threads()
    try:
        (l1, w1), (l2, w2) = train(1), train(2)
    finally:
        tinyml.set_num_threads(before)
    assert l1 == l2
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)


def test_torch_agrees_on_a_gpt_sized_linear(threads):
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((768, 128)), rng.standard_normal((384, 128)), rng.standard_normal(384)
    ours = [tinyml.tensor(a, dtype=tinyml.float32, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (x, w, b)]
    g = rng.standard_normal((768, 384))
    y = F.linear(*ours)
    y.backward(tinyml.tensor(g, dtype=tinyml.float32))
    ty = TF.linear(*theirs)
    ty.backward(torch.tensor(g, dtype=torch.float32))
    # sums of 128 (forward, dx) and 768 (dW) products of unit normals: an absolute tolerance at their scale
    assert_close(y, ty, rtol=1e-4, atol=1e-4)
    for a, t in zip(ours, theirs):
        assert_close(a.grad, t.grad, rtol=1e-4, atol=1e-3)


# -- the row grid on which slices keep numpy's bits (measured per BLAS kernel) ----------------------
@pytest.mark.parametrize("dt", DTYPES)
def test_split_products_keep_numpys_bits_on_random_shapes(cpu, ref, dt):
    # the grid load_blas measured (8 for OpenBLAS's SkylakeX kernels, 24 for its Haswell sgemm) must hold
    # beyond its probe: random shapes with row, column and k tails, split on 2 threads by the adapter's
    # own rule (each slice worth _MIN_FLOPS_PER_THREAD, which keeps it off OpenBLAS's small-matrix kernel)
    assert cpu._row_align[np.dtype(dt)] in cpu._ALIGN_CANDIDATES
    rng = np.random.default_rng(11)
    before = tinyml.get_num_threads()
    tinyml.set_num_threads(2)
    try:
        for _ in range(10):
            m, k, n = (int(v) for v in rng.integers([24, 64, 32], [400, 700, 300]))
            a, b, g = _rand(rng, (m, k), dt), _rand(rng, (k, n), dt), _rand(rng, (m, n), dt)
            np.testing.assert_array_equal(cpu.matmul(a, b), ref.matmul(a, b))
            dx = cpu.linear_backward(g, None, b.T, True, False)[0]  # one GEMM each: the split path
            dw = cpu.linear_backward(g, a, None, False, True)[1]
            np.testing.assert_array_equal(dx, ref.matmul(g, b.T))
            np.testing.assert_array_equal(dw, ref.matmul(g.T, a))
    finally:
        tinyml.set_num_threads(before)


def test_rows_slices_start_on_the_grid_and_keep_their_minimum(cpu):
    for m, parts, align, min_rows in [(100, 2, 24, 1), (7, 2, 8, 1), (48, 3, 24, 1), (1000, 7, 16, 1),
                                      (60, 2, 24, 30), (60, 2, 24, 25), (500, 4, 8, 130)]:
        slices = cpu._rows_slices(m, parts, align, min_rows)
        assert slices[0].start == 0 and slices[-1].stop == m
        assert all(s.start % align == 0 and s.stop - s.start >= min(min_rows, m) for s in slices)
        assert all(s.stop == t.start for s, t in zip(slices, slices[1:]))
    assert len(cpu._rows_slices(60, 2, 24, 30)) == 1  # 24 + 36 rows: the first is short, so one slice
    assert len(cpu._rows_slices(500, 4, 8, 130)) == 3


def test_row_align_zero_runs_one_call():
    from tinyml import _C

    rng = np.random.default_rng(12)
    a, b = _rand(rng, (301, 64), np.float32), _rand(rng, (64, 96), np.float32)
    out = np.empty((301, 96), np.float32)
    _C.matmul(a, b, out, None, 0.0, 0)  # no grid: not split, whatever the threads
    np.testing.assert_array_equal(out, a @ b)
