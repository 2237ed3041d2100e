"""Zero-padded plain and reverse formats (the default of `tinyml arithmetic --format reverse`)."""
import json
import os

import pytest
from tinyml.train.cli import main
from tinyml.train.tasks import arithmetic as ar


def test_padded_formats_put_every_digit_at_a_fixed_place_and_parse_back():
    assert ar.render(128, 67, "add", "reverse", pad=3) == ("$128+067=", "5910$;")
    assert ar.render(5, 3, "add", "plain", pad=3) == ("005+003=", "0008;")
    assert ar.render(99, 9, "mul", "reverse", pad=2) == ("$99*09=", "1980$;")
    assert ar.render(7, 7, "sub", "reverse", pad=2) == ("$07-07=", "00$;")
    for a, b in [(0, 0), (999, 999), (5, 120), (100, 0)]:
        for fmt in ("plain", "reverse"):
            prompt, completion = ar.render(a, b, "add", fmt, pad=3)
            assert len(prompt + completion) == len("".join(ar.render(1, 1, "add", fmt, pad=3)))
            assert ar.parse_answer(completion, fmt, pad=3) == ar.answer_of(a, b, "add")
            assert set(prompt + completion) <= set(ar.ALPHABET)
    assert ar.render(128, 67, "add", "reverse") == ("$128+67=", "591$;")  # unpadded stays the paper's
    assert ar.parse_answer("0100$;", "reverse", pad=3) == "10"
    assert ar.parse_answer("x1$;", "reverse", pad=3) == "1x"


def test_padding_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match=r"pad=3: .*plain and reverse formats \(got 'simple'\)"):
        ar.render(1, 2, "add", "simple", pad=3)
    with pytest.raises(ValueError, match="operands of at most pad digits .got 1234 and 2."):
        ar.render(1234, 2, "add", "reverse", pad=3)


def test_the_command_pads_reverse_by_default(tmp_path, capsys):
    common = ["arithmetic", "--digits", "1", "--samples", "50", "--test-samples", "5", "--steps", "2",
              "--layers", "1", "--width", "16", "--heads", "2"]
    assert main([*common, "--format", "reverse", "--out", str(tmp_path / "a")]) == 0
    assert "reverse format (zero-padded)" in capsys.readouterr().out
    assert json.load(open(os.path.join(tmp_path / "a", "arithmetic.json")))["run"]["pad"] is True
    assert main([*common, "--format", "reverse", "--no-pad", "--out", str(tmp_path / "b")]) == 0
    assert "(zero-padded)" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([*common, "--format", "simple", "--pad", "--out", str(tmp_path / "c")])
    assert e.value.code == 2 and "--pad: zero padding is for --format plain or reverse, not simple" in \
        capsys.readouterr().err
