"""TinyGSM's saved samples: computed once, reused on resume only under the same settings."""
import json
from types import SimpleNamespace

from tinyml.train.tasks.tinygsm_samples import _cached


def test_samples_are_saved_and_reused_only_on_resume_with_the_same_settings(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"samples": [["a", "b"]], "n": len(calls)}

    run = SimpleNamespace(out=str(tmp_path), resume=False, log=lambda *a: None)
    assert _cached(run, "data.json", {"steps": 300, "ns": (1, 2)}, compute)["n"] == 1
    saved = json.loads((tmp_path / "data.json").read_text())
    assert saved["key"] == {"steps": 300, "ns": [1, 2]} and saved["value"]["samples"] == [["a", "b"]]
    assert _cached(run, "data.json", {"steps": 300, "ns": (1, 2)}, compute)["n"] == 2  # no resume: again
    run.resume = True
    assert _cached(run, "data.json", {"steps": 300, "ns": (1, 2)}, compute)["n"] == 2  # reused
    assert _cached(run, "data.json", {"steps": 400, "ns": (1, 2)}, compute)["n"] == 3  # other settings
    assert len(calls) == 3
    nowhere = SimpleNamespace(out=None, resume=True, log=lambda *a: None)
    assert _cached(nowhere, "data.json", {}, compute)["n"] == 4 and len(list(tmp_path.iterdir())) == 1
