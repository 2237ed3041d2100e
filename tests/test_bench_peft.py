"""bench/peft.py's part 1 on a few baby steps: the pretrained weights kept in --base are what a
later run adapts, --json collects the rows, learning rates per method, and bad flags fail first."""
from __future__ import annotations

import json
import os

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def bench():
    module = load_script("bench/peft.py", "bench_peft")  # not "peft": the peer's package
    import tinyml

    threads = tinyml.get_num_threads()
    yield module
    tinyml.set_num_threads(threads)  # part 1 sets the bench's --threads


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_base_file_and_rows(bench, tmp_path, capsys):
    base, rows = str(tmp_path / "base.safetensors"), str(tmp_path / "rows.jsonl")
    common = ["--config", "baby", "--pretrain-steps", "2", "--steps", "2", "--eval-iters", "1", "--skip-peer",
              "--base", base, "--json", rows]
    bench.main(common + ["--methods", "lora", "--lr-for", "lora=1e-2"])
    assert os.path.exists(base)
    first = _rows(rows)
    assert [r["method"] for r in first] == ["full", "lora"]  # full fine-tuning always runs
    assert [r["lr"] for r in first] == [3e-4, 1e-2]
    assert first[1]["trainable"] == 65_536 < first[0]["trainable"]  # r=8 on the 4 linears of 4 blocks
    assert first[1]["memory"] < first[0]["memory"]
    bench.main(common + ["--methods", "lora", "--no-full", "--lr-for", "lora=1e-2"])
    assert "pretrained weights read from" in capsys.readouterr().out
    second = _rows(rows)[2:]
    assert [r["method"] for r in second] == ["lora"]
    # the same weights, batches and lr: the same losses, before and after
    assert second[0]["val_before"] == first[1]["val_before"]
    assert second[0]["val"] == pytest.approx(first[1]["val"], rel=1e-6)
    assert second[0]["val"] != second[0]["val_before"]


@pytest.mark.parametrize("flags, message", [
    (["--methods", "lora,bogus"], "unknown 'bogus'"),
    (["--lr-for", "nope=1e-3"], "unknown method 'nope'"),
    (["--lr-for", "lora=fast"], "'fast' is not a number"),
])
def test_bad_flags_fail_before_any_work(bench, flags, message, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--config", "baby", "--skip-peer"] + flags)
    assert message in str(e.value) + capsys.readouterr().err
