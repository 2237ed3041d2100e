"""`tinyml finetune --method lst --lst-init fisher`: the side network pruned by Fisher information
of the training text, recorded in the run, and resumed and loaded back as any LST run."""
import json

import numpy as np
from tinyml.models.peft import ladder
from tinyml.train.cli import main
from tinyml.train.commands import finetune

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12
NEW = ("All:\nYou are resolved, speak.\n\nFirst Citizen:\nBefore we die, hear me: famish rather than "
       "proceed?\n\n") * 14
FAST = ["--batch-size", "2", "--device", "cpu", "--eval-iters", "2", "--sample-tokens", "0"]


def test_lst_fisher_init_scores_the_training_text_and_the_run_loads_back(tmp_path, monkeypatch):
    (tmp_path / "tiny.txt").write_text(TEXT)
    (tmp_path / "new.txt").write_text(NEW)
    assert main(["train", "--data", str(tmp_path / "tiny.txt"), "--out", str(tmp_path / "source"), "--steps",
                 "2", *FAST]) == 0
    seen = []
    real = ladder.fisher_information

    def spy(model, weights, batches, loss_fn):
        seen.append([tuple(t.shape) for t in batches[0]])
        return real(model, weights, batches, loss_fn)

    monkeypatch.setattr(ladder, "fisher_information", spy)
    out = tmp_path / "lst"
    args = ["finetune", "--from", str(tmp_path / "source"), "--data", str(tmp_path / "new.txt"),
            "--out", str(out), "--method", "lst", "--reduction", "4", "--lst-init", "fisher", "--steps", "2",
            "--eval-interval", "2", *FAST]
    assert main(args) == 0
    assert len(seen) == 1 and seen[0][0] == seen[0][1] and seen[0][0][0] == 2  # (batch, block) windows
    record = json.loads((out / "run.json").read_text())
    assert record["finetune"]["adapter"]["init"] == "fisher"
    assert "fisher_batches" not in record["finetune"]["adapter"]
    model, _ = finetune.load_finetuned(str(out))  # the side weights come from the checkpoint
    assert np.isfinite(model.base_model.ladder_side.side["default"].up.weight.detach().numpy()).all()
    assert len(seen) == 1  # loading scores nothing again
