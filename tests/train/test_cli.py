"""`tinyml train` / `tinyml sample` end to end on a tiny text: what a run prints and leaves behind,
and resume semantics (flags kept, conflicts refused, extension, Ctrl-C hint, metrics, temp files)."""
import json
import os
import shlex
import subprocess
import sys

import pytest
from tinyml.train import trainer as trainer_module
from tinyml.train.checkpoint import load_checkpoint
from tinyml.train.cli import main

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12
FAST = ["--batch-size", "2", "--device", "cpu", "--eval-iters", "2", "--sample-tokens", "0"]


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT)
    return str(p)


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tinyml: error: "), lines[0]
    return lines[0]


def _usage_error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return _one_line_error(capsys)


def _metric_steps(out, key="loss"):
    return [r["step"] for r in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if key in r]


def test_train_reports_its_files_then_resume_then_sample(tmp_path, text_file, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--data", text_file, "--out", out, "--steps", "3", "--batch-size", "2",
            "--device", "cpu", "--sample-tokens", "20"]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "--- sample ---" in stdout and "done: step 3 (max_steps)" in stdout
    assert "ms/step" in stdout and "s evaluation" in stdout
    for f in ("run.json", "tokenizer.json", "train.bin", "val.bin", "checkpoint.safetensors",
              "metrics.jsonl"):
        assert os.path.exists(os.path.join(out, f)), f
    assert open(os.path.join(out, "loss.png"), "rb").read(4) == b"\x89PNG"  # matplotlib is a dependency
    for f in ("checkpoint.safetensors", "metrics.jsonl", "loss.png"):
        assert os.path.join(out, f) in stdout, f
    sample_cmd = next(line for line in stdout.splitlines() if line.startswith("sample from it: "))
    assert sample_cmd == f"sample from it: tinyml sample --ckpt {shlex.quote(out)}"
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["preset"] == "baby" and run["model"]["n_layer"] == 4 and run["tokenizer"] == "char"

    # a second start in the same folder would overwrite the checkpoint: refused
    assert "already holds a checkpoint; pass --resume" in _usage_error(capsys, args)
    assert main(["train", "--out", out, "--steps", "5", "--sample-tokens", "0", "--resume"]) == 0
    assert "done: step 5" in capsys.readouterr().out

    # the printed command works as printed
    words = shlex.split(sample_cmd.removeprefix("sample from it: "))
    assert main(words[1:] + ["--prompt", "First", "--tokens", "15", "--temperature", "0"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("First") and sample.endswith("\n")
    assert len(sample) - 1 == len("First") + 15  # one character per token, then print's newline


def test_bpe_tokenizer(tmp_path, text_file, capsys):
    out = str(tmp_path / "bpe")
    assert main(["train", "--data", text_file, "--out", out, "--steps", "1", "--batch-size", "1",
                 "--device", "cpu", "--tokenizer", "bpe", "--vocab-size", "280", "--sample-tokens", "5"]) == 0
    tok = json.load(open(os.path.join(out, "tokenizer.json")))
    assert tok["model"]["type"] == "BPE"


def test_ctrl_c_hint_repeats_every_flag_and_resumes_exactly(tmp_path, text_file, capsys, monkeypatch):
    """The hint after Ctrl-C is the whole command; following it ends where an unbroken run ends."""
    flags = ["--steps", "6", "--lr", "0.002", "--eval-interval", "3", "--seed", "7", "--data", text_file,
             *FAST]
    straight = str(tmp_path / "straight")
    assert main(["train", *flags, "--out", straight]) == 0
    original = trainer_module.Trainer.train_step

    def step_then_ctrl_c(self):
        result = original(self)
        if self.step == 1:  # the second step is under way: as if Ctrl-C came now
            self.request_stop()
        return result

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step_then_ctrl_c)
    out = str(tmp_path / "broken")
    capsys.readouterr()
    assert main(["train", *flags, "--out", out]) == 130
    hint = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("resume with: "))
    words = shlex.split(hint.removeprefix("resume with: "))
    given = dict(zip(flags[::2], flags[1::2]), **{"--data": os.path.abspath(text_file)})
    assert {w: words[words.index(w) + 1] for w in given} == given, hint
    assert words[:2] == ["tinyml", "train"] and words[-3:] == ["--out", out, "--resume"]
    monkeypatch.setattr(trainer_module.Trainer, "train_step", original)
    assert main(words[1:]) == 0
    assert "done: step 6" in capsys.readouterr().out

    def losses(folder):
        return [(r["step"], r.get("loss"), r.get("val_loss"))
                for r in map(json.loads, open(os.path.join(folder, "metrics.jsonl")))]

    assert losses(out) == losses(straight)  # same schedule, same batches, bit for bit
    assert [step for step, _, val in losses(out) if val is not None] == [3, 6]


def test_resume_keeps_the_runs_flags_and_extending_extends_the_schedule(tmp_path, text_file, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--out", out, "--steps", "4", *FAST]) == 0
    assert main(["train", "--out", out, "--resume"]) == 0  # --steps 4 kept: nothing left to do
    assert "done: step 4" in capsys.readouterr().out
    assert main(["train", "--out", out, "--resume", "--steps", "20"]) == 0
    assert "done: step 20" in capsys.readouterr().out
    state = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    assert state["step"] == 20 and state["scheduler"]["decay_steps"] == 20  # the decay now ends at step 20
    assert state["scheduler"]["warmup_steps"] == 1  # the run's warmup (a tenth of 4), not a tenth of 20
    assert json.load(open(os.path.join(out, "run.json")))["flags"]["steps"] == 20
    assert _metric_steps(out) == [4, 10, 20]  # log_interval 10, and the last step of each leg
    assert main(["train", "--out", out, "--resume"]) == 0  # the extended length is the run's now
    assert "done: step 20" in capsys.readouterr().out


def test_resume_of_a_run_json_without_flags(tmp_path, text_file, capsys):
    # run.json as written before it kept the flags: they are rebuilt from it and the checkpoint
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--out", out, "--steps", "4", *FAST]) == 0
    path = os.path.join(out, "run.json")
    run = json.load(open(path))
    for key in ("flags", "steps", "vocab_size"):
        del run[key]
    json.dump(run, open(path, "w"))
    assert main(["train", "--out", out, "--resume", "--steps", "6"]) == 0
    assert "done: step 6" in capsys.readouterr().out
    assert "--batch-size 3 (the run has 2)" in _usage_error(capsys, ["train", "--out", out, "--resume",
                                                                     "--batch-size", "3"])


def test_help_documents_resume_extension(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a larger --steps extends the run and stretches its learning-rate decay" in text


@pytest.mark.parametrize("flag,value,recorded", [
    ("--batch-size", "3", "2"), ("--lr", "0.01", "0.001"), ("--seed", "1", "1337"),
    ("--config", "small", "baby"), ("--tokenizer", "bpe", "char"), ("--vocab-size", "300", "no --vocab-size"),
    ("--steps", "2", "4"),
])
def test_resume_refuses_flags_that_conflict_with_the_run(tmp_path, text_file, capsys, flag, value, recorded):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--out", out, "--steps", "4", *FAST]) == 0
    before = open(os.path.join(out, "checkpoint.safetensors"), "rb").read()
    run_before = open(os.path.join(out, "run.json")).read()
    capsys.readouterr()
    message = _usage_error(capsys, ["train", "--out", out, "--resume", flag, value])
    if flag == "--steps":
        assert f"--steps {value}: the checkpoint in {out} is already at step 4" in message
    else:
        assert f"{flag} {value} (the run has {recorded})" in message
    assert open(os.path.join(out, "checkpoint.safetensors"), "rb").read() == before  # nothing touched
    assert open(os.path.join(out, "run.json")).read() == run_before


def test_resume_with_other_data_is_refused(tmp_path, text_file, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--out", out, "--steps", "1", *FAST, "--data", text_file]) == 0
    other = tmp_path / "other.txt"
    other.write_text(TEXT.upper())
    capsys.readouterr()
    assert f"--data {other} (the run has {text_file})" in _usage_error(
        capsys, ["train", "--out", out, "--resume", "--data", str(other)])


def test_rerun_after_a_kill_writes_no_duplicate_metrics_and_removes_stale_temp_files(tmp_path, text_file):
    out = tmp_path / "run"
    # a run killed before its first checkpoint: metrics logged, a temp checkpoint half-written
    assert main(["train", "--data", text_file, "--out", str(out), "--steps", "2", *FAST]) == 0
    os.remove(out / "checkpoint.safetensors")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (out / f".checkpoint.safetensors.tmp{dead}").write_bytes(b"half a checkpoint")
    (out / "notes.tmp1").write_text("the user's own file")  # not a name a run writes: kept
    assert main(["train", "--data", text_file, "--out", str(out), "--steps", "2", *FAST]) == 0
    assert _metric_steps(str(out)) == [2] and _metric_steps(str(out), "val_loss") == [2]
    assert not (out / f".checkpoint.safetensors.tmp{dead}").exists() and (out / "notes.tmp1").exists()

    # killed after logging past its last checkpoint: the resumed run rewrites those steps once
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "loss": 9.0}) + "\n" + '{"step": 4, "lo')  # and a torn last line
    assert main(["train", "--out", str(out), "--resume", "--steps", "4"]) == 0
    assert _metric_steps(str(out)) == [2, 4]


def test_eval_flags_progress_and_training_only_timing(tmp_path, text_file, capsys, monkeypatch):
    out = str(tmp_path / "run")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal: progress is redrawn in place
    assert main(["train", "--data", text_file, "--out", out, "--steps", "4", "--eval-interval", "2",
                 "--eval-iters", "3", "--batch-size", "2", "--device", "cpu", "--sample-tokens", "0"]) == 0
    stdout = capsys.readouterr().out
    assert _metric_steps(out, "val_loss") == [2, 4]
    assert "step 2: evaluating, batch 3/3" in stdout and "step 4: evaluating, batch 1/3" in stdout
    state = load_checkpoint(os.path.join(out, "checkpoint.safetensors"))
    assert state["train_config"]["eval_iters"] == 3 and state["train_config"]["eval_interval"] == 2


def test_small_preset_on_cpu_says_it_is_gpu_sized(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT * 3)  # the small preset's context is 256 characters
    assert main(["train", "--config", "small", "--data", str(tmp_path / "t.txt"),
                 "--out", str(tmp_path / "s"), "--steps", "1", "--batch-size", "1", "--eval-iters", "1",
                 "--device", "cpu", "--sample-tokens", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("note: small is a GPU-sized preset")
    assert main(["train", "--data", str(tmp_path / "t.txt"), "--out", str(tmp_path / "b"), "--steps", "1",
                 *FAST]) == 0
    assert "GPU-sized" not in capsys.readouterr().out


def test_out_of_memory_is_one_line(tmp_path, text_file, capsys, monkeypatch):
    def no_memory(self, resume=False):
        raise MemoryError

    monkeypatch.setattr(trainer_module.Trainer, "fit", no_memory)
    assert main(["train", "--data", text_file, "--out", str(tmp_path / "r"), "--steps", "1", *FAST]) == 1
    assert "out of memory with --batch-size 2 (2x64 tokens a step) on cpu" in _one_line_error(capsys)


def test_data_problems_are_one_line_and_leave_no_folder(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    assert main(["train", "--data", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "e")]) == 1
    assert "is empty" in _one_line_error(capsys)
    (tmp_path / "short.txt").write_text("To be or not to be")
    assert main(["train", "--data", str(tmp_path / "short.txt"), "--out", str(tmp_path / "s")]) == 1
    assert "too short" in _one_line_error(capsys)
    assert not os.path.exists(tmp_path / "e") and not os.path.exists(tmp_path / "s")


def test_version(capsys):
    import tinyml

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"tinyml {tinyml.__version__}"


def test_family_commands_are_found_in_train_commands(tmp_path, monkeypatch, capsys):
    """A module in train/commands/ becomes a subcommand: its flags, its help, its exit status."""
    from tinyml.train import cli, commands

    (tmp_path / "echo_twice.py").write_text(
        '"""Print a word twice."""\nNAME = "echo-twice"\nHELP = "print a word twice"\n'
        "def add_arguments(p):\n    p.add_argument('--word', required=True)\n"
        "def run(args):\n    print(args.word * 2)\n    return 7\n")
    monkeypatch.setattr(commands, "__path__", [*commands.__path__, str(tmp_path)])
    monkeypatch.syspath_prepend(str(tmp_path))
    import sys

    sys.modules.pop(f"{commands.__name__}.echo_twice", None)
    assert cli.main(["echo-twice", "--word", "ab"]) == 7
    assert capsys.readouterr().out == "abab\n"
    help_text = cli.build_parser().format_help()
    assert "echo-twice" in help_text and "print a word twice" in help_text


def test_compile_flag_trains_bit_identically_and_is_kept_on_resume(tmp_path, text_file, capsys):
    """`--compile` replays the gradient step (tinyml.compile): the same losses as eager, bit for bit,
    and the run's resume command repeats the switch."""
    flags = ["--steps", "5", "--eval-interval", "5", "--data", text_file, *FAST]
    eager, compiled = str(tmp_path / "eager"), str(tmp_path / "compiled")
    assert main(["train", *flags, "--out", eager]) == 0
    assert main(["train", *flags, "--compile", "--out", compiled]) == 0

    def losses(folder):
        return [(r["step"], r.get("loss"), r.get("val_loss"))
                for r in map(json.loads, open(os.path.join(folder, "metrics.jsonl")))]

    assert losses(compiled) == losses(eager)
    assert json.load(open(os.path.join(compiled, "run.json")))["flags"]["compile"] is True
    assert "compile" not in json.load(open(os.path.join(eager, "run.json")))["flags"]
    capsys.readouterr()
    assert main(["train", "--out", compiled, "--resume", "--steps", "6"]) == 0
    saved = load_checkpoint(os.path.join(compiled, "checkpoint.safetensors"))["train_config"]
    assert saved["compile"] is True
