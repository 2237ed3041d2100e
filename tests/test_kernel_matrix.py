import json
import os
import subprocess
import sys

import tinyml
from tinyml.backends import matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_kernel_has_a_numpy_reference():
    missing = [name for name, have in matrix.registry().items() if "reference" not in have]
    assert missing == [], f"kernels without a numpy reference: {missing}"


def test_docs_kernels_md_is_up_to_date():
    with open(os.path.join(ROOT, "docs", "kernels.md")) as f:
        current = f.read()
    assert current == matrix.markdown(), ("docs/kernels.md is stale: regenerate it with "
                                          "`python -m tinyml.backends --markdown > docs/kernels.md`")


def test_matrix_command_prints_a_row_per_kernel():
    out = subprocess.run([sys.executable, "-m", "tinyml.backends"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert "softmax_forward" in out and "reference (numpy)" in out
    assert len(out.splitlines()) >= len(matrix.registry()) + 2


def test_table_shows_recorded_status():
    fake = {"softmax_forward": {"cpu": {"passed": 3, "failed": 0}, "reference": {"passed": 1, "failed": 1}}}
    text = matrix.table(fake)
    row = next(line for line in text.splitlines() if line.startswith("softmax_forward"))
    assert "ok (3 tests)" in row and "FAILED 1/2" in row
    assert tinyml.backends.backend_of("softmax_forward") in ("cpu", "reference")


def test_status_is_found_from_the_package_not_the_working_directory(tmp_path):
    # a status file in the cwd (where the old lookup looked) must not be what the table shows
    decoy = tmp_path / ".pytest_cache" / "tinyml" / "kernel_status.json"
    decoy.parent.mkdir(parents=True)
    decoy.write_text(json.dumps({"softmax_forward": {"reference": {"passed": 0, "failed": 7}}}))
    code = "from tinyml.backends.matrix import STATUS_FILE; print(STATUS_FILE)"
    where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=tmp_path).stdout.strip()
    assert where == matrix.STATUS_FILE and os.path.isabs(where)
    if os.path.dirname(os.path.abspath(tinyml.__file__)) == os.path.join(ROOT, "tinyml"):  # a checkout
        assert where == os.path.join(ROOT, ".pytest_cache", "tinyml", "kernel_status.json")
    out = subprocess.run([sys.executable, "-m", "tinyml.backends"], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert "FAILED 7/7" not in out
    assert out == subprocess.run([sys.executable, "-m", "tinyml.backends"], capture_output=True, text=True,
                                 check=True, cwd=ROOT).stdout
