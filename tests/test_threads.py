"""tinyml.set_num_threads bounds: values OpenMP cannot survive raise instead of killing the process.

Each check runs in a child interpreter: before the bound, set_num_threads(100000) followed by any
OpenMP kernel segfaulted, and a regression must fail this test rather than end pytest.
"""
import subprocess
import sys
import textwrap

import pytest

import tinyml
from tinyml import threads


def _run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)


def test_huge_thread_count_raises_and_kernels_still_run():
    child = _run_child("""
        import tinyml
        import tinyml.nn.functional as F
        before = tinyml.get_num_threads()
        for n in (100000, 1025, 2**31, 2**40):
            try:
                tinyml.set_num_threads(n)
            except ValueError as e:
                assert str(n) in str(e) and "1024" in str(e), e
            else:
                raise SystemExit(f"set_num_threads({n}) was accepted")
        assert tinyml.get_num_threads() == before
        x = tinyml.randn(512, 256)
        print(float(F.softmax(x, dim=-1).sum()))
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert float(child.stdout.split()[-1]) == pytest.approx(512, rel=1e-5)


def test_the_bound_itself_runs_kernels():
    """MAX_THREADS threads do start: OpenMP creates the whole team for a kernel on 2 cores."""
    child = _run_child("""
        import numpy as np
        import tinyml
        import tinyml.nn.functional as F
        from tinyml.threads import MAX_THREADS
        tinyml.set_num_threads(MAX_THREADS)
        assert tinyml.get_num_threads() == MAX_THREADS
        x = tinyml.randn(4096, 64)
        y = F.layer_norm(x, (64,))
        np.testing.assert_allclose(y.numpy().mean(-1), 0, atol=1e-5)
        print("ok")
    """)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split()[-1] == "ok"


def test_binding_enforces_the_same_bound():
    from tinyml.backends.cpu import _C

    if _C is None:
        pytest.skip("tinyml._C is not built")
    assert _C.MAX_THREADS == threads.MAX_THREADS
    before = tinyml.get_num_threads()
    for bad in (0, -1, threads.MAX_THREADS + 1, 100000):
        with pytest.raises(ValueError, match=f"at most {threads.MAX_THREADS} threads, got {bad}"):
            _C.set_num_threads(bad)
    assert tinyml.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -3, 1025, 100000, 2.0, 1.5, True, "4", None])
def test_bad_values_raise_naming_value_and_bound(bad):
    """PyTorch raises for n <= 0 (and a TypeError for non-ints); tinyml raises ValueError for all
    of these, and for counts above MAX_THREADS, naming the value."""
    before = tinyml.get_num_threads()
    with pytest.raises(ValueError, match=rf"positive integer of at most MAX_THREADS = 1024, got {bad!r}"):
        tinyml.set_num_threads(bad)
    assert tinyml.get_num_threads() == before


def test_numpy_integers_are_accepted():
    import numpy as np

    before = tinyml.get_num_threads()
    try:
        tinyml.set_num_threads(np.int64(1))
        assert tinyml.get_num_threads() == 1
    finally:
        tinyml.set_num_threads(before)
