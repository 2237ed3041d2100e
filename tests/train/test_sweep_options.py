"""`tinyml sweep --independent-wd`: AdamW's decay becomes LAMBDA / lr per run, so every run removes the
same lr(s)/lr * LAMBDA of a weight per step; the setting is named in the json file and the label."""
import json

import pytest
from tinyml.train.cli import main

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 20


def test_independent_weight_decay(tmp_path, capsys):
    (tmp_path / "tiny.txt").write_text(TEXT)
    common = ["sweep", "--data", str(tmp_path / "tiny.txt"), "--lr", "1e-3..1e-2", "--points", "2",
              "--steps", "2", "--batch-size", "2", "--eval-iters", "1", "--device", "cpu",
              "--out", str(tmp_path / "out")]
    assert main([*common, "--independent-wd", "1e-4"]) == 0
    res = json.loads((tmp_path / "out" / "sweep-independent-wd-0.0001.json").read_text())
    assert res["independent_wd"] == 1e-4 and res["label"] == "independent-wd 0.0001"
    assert [r["weight_decay"] for r in res["runs"]] == pytest.approx([1e-4 / 1e-3, 1e-4 / 1e-2])
    assert main(common) == 0  # without it, the preset's decay at every learning rate
    base = json.loads((tmp_path / "out" / "sweep-baseline.json").read_text())
    assert [r["weight_decay"] for r in base["runs"]] == [0.1, 0.1] and base["independent_wd"] is None
    with pytest.raises(SystemExit) as e:
        main([*common, "--independent-wd", "-1"])
    assert e.value.code == 2 and "--independent-wd" in capsys.readouterr().err
