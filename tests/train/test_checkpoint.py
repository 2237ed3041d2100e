import os

import numpy as np
import pytest
from tinyml.train import load_checkpoint, save_checkpoint

import tinyml


def test_roundtrip_nested_state_bit_exact(tmp_path):
    rng_state = tinyml.random.get_rng_state()
    state = {"step": 7, "model": {"w": tinyml.randn(3, 4), "b": tinyml.zeros(4, dtype=tinyml.float64)},
             "optimizer": {"state": {0: {"step": tinyml.tensor(3.0), "exp_avg": tinyml.randn(3, 4)}},
                           "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.99), "params": [0]}]},
             "rng": rng_state, "best_val": float("inf"), "note": None}
    path = str(tmp_path / "ck.safetensors")
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    assert back["step"] == 7 and back["note"] is None and back["best_val"] == float("inf")
    np.testing.assert_array_equal(back["model"]["w"].numpy(), state["model"]["w"].numpy())
    assert back["model"]["b"].dtype == tinyml.float64
    assert list(back["optimizer"]["state"]) == [0]  # int keys survive
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert back["rng"] == rng_state  # 128-bit integers survive
    assert [f for f in os.listdir(tmp_path)] == ["ck.safetensors"]  # no temp file left behind


def test_failed_write_keeps_the_old_checkpoint(tmp_path):
    path = str(tmp_path / "ck.safetensors")
    save_checkpoint(path, {"step": 1, "model": {"w": tinyml.ones(2)}})
    with pytest.raises(TypeError):
        save_checkpoint(path, {"step": 2, "model": {"w": object()}})
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["ck.safetensors"]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(str(tmp_path / "none.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a tinyml checkpoint"):
        load_checkpoint(str(tmp_path / "junk.safetensors"))
    tinyml.save({"w": tinyml.ones(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError, match="not a tinyml training checkpoint"):
        load_checkpoint(str(tmp_path / "weights.safetensors"))


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    import stat

    events = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", b)), real_replace(a, b))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(
        ("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file", None)), real_fsync(fd))[1])
    path = str(tmp_path / "ck.safetensors")
    save_checkpoint(path, {"step": 1, "model": {"w": tinyml.ones(2)}})
    i = events.index(("replace", path))
    assert ("fsync dir", None) in events[i + 1:], events


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys

    from tinyml.train.checkpoint import remove_stale_temp_files

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = [f".checkpoint.safetensors.tmp{dead}", f"metrics.jsonl.tmp{dead}", f"loss.png.tmp{dead}.png",
             f"tokenizer.json.tmp{dead}", f"train.bin.tmp{dead}"]
    kept = [f".checkpoint.safetensors.tmp{os.getpid()}",  # a live writer (this process) is mid-write
            f"notes.txt.tmp{dead}", "checkpoint.safetensors", "metrics.jsonl"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(remove_stale_temp_files(str(tmp_path))) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)
    assert remove_stale_temp_files(str(tmp_path / "no-such-folder")) == []
