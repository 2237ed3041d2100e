import numpy as np
import pytest

from tinyml.data import RandomWindowSampler, load_tokens, token_dtype, write_tokens


def test_dtype_choice():
    assert token_dtype(65) == np.uint16 and token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32
    with pytest.raises(ValueError):
        token_dtype(0)


@pytest.mark.parametrize("vocab", [100, 70_000])
def test_write_and_memmap(tmp_path, vocab):
    ids = np.random.default_rng(0).integers(0, vocab, size=1000)
    path = str(tmp_path / "toks.bin")
    mm = write_tokens(path, ids, vocab_size=vocab)
    assert isinstance(mm, np.memmap) and mm.dtype == token_dtype(vocab)
    assert (tmp_path / "toks.bin").stat().st_size == 1000 * mm.dtype.itemsize
    np.testing.assert_array_equal(load_tokens(path), ids)
    np.testing.assert_array_equal(load_tokens(path, dtype=token_dtype(vocab)), ids)


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match=r"ids span \[0, 70\] but vocab_size is 50"):
        write_tokens(str(tmp_path / "a.bin"), [0, 70], vocab_size=50)
    with pytest.raises(ValueError, match="empty"):
        write_tokens(str(tmp_path / "a.bin"), [], vocab_size=50)
    with pytest.raises(FileNotFoundError):
        load_tokens(str(tmp_path / "nothing.bin"))


def test_sampler_windows_targets_and_determinism():
    data = np.arange(500, dtype=np.uint16)
    s = RandomWindowSampler(data, block_size=8, batch_size=4, seed=3)
    x, y = s.next_batch()
    assert x.shape == (4, 8) and y.shape == (4, 8) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)  # consecutive tokens, targets shifted by one
    np.testing.assert_array_equal(x[:, 1:], x[:, :-1] + 1)
    assert x.min() >= 0 and y.max() <= 499
    x2, _ = RandomWindowSampler(data, block_size=8, batch_size=4, seed=3).next_batch()
    np.testing.assert_array_equal(x, x2)
    x3, _ = RandomWindowSampler(data, block_size=8, batch_size=4, seed=4).next_batch()
    assert not np.array_equal(x, x3)


def test_sampler_state_dict_resumes_exactly():
    data = np.arange(1000, dtype=np.uint16)
    a = RandomWindowSampler(data, 16, 2, seed=0)
    for _ in range(5):
        a.next_batch()
    state = a.state_dict()
    expected = [a.next_batch()[0] for _ in range(3)]
    b = RandomWindowSampler(data, 16, 2, seed=99)
    b.load_state_dict(state)
    assert b.batches_drawn == 5
    for e in expected:
        np.testing.assert_array_equal(b.next_batch()[0], e)


def test_sampler_too_little_data():
    with pytest.raises(ValueError, match="fewer than block_size"):
        RandomWindowSampler(np.arange(5), block_size=8, batch_size=1)
