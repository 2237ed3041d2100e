"""Every flag of `tinyml train` and `tinyml sample` with nonsense values: one line on stderr,
`tinyml: error: ...` naming the value, exit status 2, and no run folder made. All of it fails
before any text is read, so the whole file takes seconds."""
import subprocess
import sys

import pytest
from tinyml.train.cli import build_parser, main

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 40
HUGE = str(10**12)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A trained run (1 step) to sample from."""
    root = tmp_path_factory.mktemp("faults")
    (root / "t.txt").write_text(TEXT)
    out = str(root / "run")
    assert main(["train", "--data", str(root / "t.txt"), "--out", out, "--steps", "1", "--batch-size", "1",
                 "--eval-iters", "1", "--device", "cpu", "--sample-tokens", "0"]) == 0
    return out


def _fails_with_usage(capsys, argv, *expected):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("tinyml: error: "), lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])


# (flag, value or None for a flag given with no value, text the message must hold)
TRAIN_FAULTS = [
    ("--config", "huge", "invalid choice: 'huge'"),
    ("--model", "rnn", "invalid choice: 'rnn'"),
    ("--nproc", "0", "--nproc: must be an integer >= 1, got '0'"),
    ("--steps", "0", "--steps: must be an integer >= 1, got '0'"),
    ("--steps", "-3", "got '-3'"),
    ("--steps", "many", "expected an integer, got 'many'"),
    ("--steps", "1.5", "got '1.5'"),
    ("--steps", "", "got ''"),
    ("--batch-size", "0", "--batch-size: must be an integer >= 1, got '0'"),
    ("--batch-size", "-1", "got '-1'"),
    ("--batch-size", HUGE, f"--batch-size {HUGE}: one step of {HUGE}x64 tokens needs at least"),
    ("--lr", "nan", "--lr: must be a finite number > 0, got 'nan'"),
    ("--lr", "inf", "got 'inf'"),
    ("--lr", "-0.001", "got '-0.001'"),
    ("--lr", "0", "got '0'"),
    ("--lr", "fast", "expected a number, got 'fast'"),
    ("--eval-interval", "0", "--eval-interval: must be an integer >= 1, got '0'"),
    ("--eval-iters", "-1", "--eval-iters: must be an integer >= 1, got '-1'"),
    ("--device", "cpu:1", "--device: expected auto, cpu, cuda or cuda:N, got 'cpu:1'"),
    ("--device", "", "got ''"),
    ("--device", "gpu", "got 'gpu'"),
    ("--device", "cuda:-1", "got 'cuda:-1'"),
    ("--device", "cuda:7", "--device cuda:7"),  # no such GPU (or none at all) here
    ("--out", "", "--out: expected a folder path, got ''"),
    ("--out", "{file}", "is an existing file, not a folder"),
    ("--out", "{file}/run", "which is an existing file, not a folder"),
    ("--resume", None, "--resume: no run to continue in"),
    ("--resume=yes", None, "ignored explicit argument 'yes'"),
    ("--compile=yes", None, "ignored explicit argument 'yes'"),
    ("--data", "/no/such/file.txt", "--data: no such file: '/no/such/file.txt'"),
    ("--data", "{dir}", "expected a text file, got a directory"),
    ("--data", "", "--data: expected a file path, got ''"),
    ("--tokenizer", "wordpiece", "invalid choice: 'wordpiece'"),
    ("--vocab-size", "1000000000", "--vocab-size: must be an integer in [257, 1048576], got '1000000000'"),
    ("--vocab-size", "100", "got '100'"),
    ("--vocab-size", "512", "--vocab-size 512 applies to --tokenizer bpe only"),  # with the char tokenizer
    ("--seed", "-1", "--seed: must be an integer in [0, 18446744073709551615], got '-1'"),
    ("--seed", str(2**64), f"got '{2**64}'"),
    ("--sample-tokens", "-5", "--sample-tokens: must be an integer >= 0, got '-5'"),
]
SAMPLE_FAULTS = [
    ("--ckpt", "/no/such/run", "--ckpt: no such file or folder: '/no/such/run'"),
    ("--ckpt", "", "--ckpt: expected a path, got ''"),
    ("--ckpt", "{dir}", "expected a run folder with checkpoint.safetensors and run.json"),
    ("--prompt", "\u2603 snowman", "--prompt '\u2603 snowman': character '\u2603' is not in this"),
    ("--tokens", "-1", "--tokens: must be an integer >= 0, got '-1'"),
    ("--temperature", "nan", "--temperature: must be a finite number >= 0, got 'nan'"),
    ("--temperature", "-1", "got '-1'"),
    ("--temperature", "inf", "got 'inf'"),
    ("--top-k", "-1", "--top-k: must be an integer >= 0, got '-1'"),
    ("--top-p", "nan", "--top-p: must be a finite number in (0, 1], got 'nan'"),
    ("--top-p", "-0.1", "got '-0.1'"),
    ("--top-p", "0", "got '0'"),
    ("--top-p", "1.5", "got '1.5'"),
    ("--device", "cpu:1", "--device: expected auto, cpu, cuda or cuda:N, got 'cpu:1'"),
    ("--device", "cuda:7", "--device cuda:7"),
    ("--seed", "-1", "--seed: must be an integer in [0, 18446744073709551615], got '-1'"),
]


def _argv(flag, value, tmp_path):
    if value is None:
        return [flag]
    (tmp_path / "a_file").write_text("x")
    return [flag, value.format(file=tmp_path / "a_file", dir=tmp_path)]


@pytest.mark.parametrize("flag,value,message", TRAIN_FAULTS)
def test_train_flag_nonsense(tmp_path, capsys, flag, value, message):
    out = tmp_path / "never"
    argv = ["train", "--out", str(out), "--device", "cpu", *_argv(flag, value, tmp_path)]
    _fails_with_usage(capsys, argv, message.format(file=tmp_path / "a_file"))
    assert not out.exists()  # a failed start makes no folder


@pytest.mark.parametrize("flag,value,message", SAMPLE_FAULTS)
def test_sample_flag_nonsense(tmp_path, capsys, run_folder, flag, value, message):
    argv = ["sample", "--ckpt", run_folder, "--tokens", "3", *_argv(flag, value, tmp_path)]
    _fails_with_usage(capsys, argv, message)
    assert capsys.readouterr().out == ""  # no text sampled


def test_sample_without_ckpt(capsys):
    _fails_with_usage(capsys, ["sample"], "the following arguments are required: --ckpt")


def test_every_flag_has_a_fault_case():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name, faults in (("train", TRAIN_FAULTS), ("sample", SAMPLE_FAULTS)):
        covered = {f.split("=")[0] for f, _, _ in faults}
        flags = {s for a in subs[name]._actions for s in a.option_strings if s.startswith("--")} - {"--help"}
        assert flags - covered == set(), f"tinyml {name} flags without a nonsense case: {flags - covered}"


def test_huge_bpe_vocab_cannot_abort_the_interpreter(tmp_path):
    """tokenizers aborts the process on --vocab-size 1000000000; a child process keeps a regression
    from killing pytest, and shows the refusal is an ordinary argparse error."""
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "tinyml.train.cli", "train", "--tokenizer", "bpe",
                           "--vocab-size", "1000000000", "--out", str(out), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("tinyml: error: argument --vocab-size:") and proc.stderr.count("\n") == 1
    assert "'1000000000'" in proc.stderr and not out.exists()


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_compile_with_data_parallel_is_refused(tmp_path, capsys):
    """DistributedDataParallel's steps are not captured: --compile with --nproc is a usage error, before
    any process is launched or folder made."""
    out = tmp_path / "never"
    argv = ["train", "--out", str(out), "--device", "cpu", "--compile", "--nproc", "2"]
    _fails_with_usage(capsys, argv, "--compile: data-parallel runs (--nproc, mpiexec)")
    assert not out.exists()
