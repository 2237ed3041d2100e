#!/usr/bin/env bash
# One prepared GPU check, for the short and rare windows when a GPU is lent: build tinyml in place, run
# the cuda-parametrised tests (with the nccl backend's, tests/distributed/test_nccl.py) on the real device,
# then bench/gpu_kernels.py and bench/gpt_gpu.py.
#
#   bash bench/gpu_check.sh [OUT_DIR]      # OUT_DIR defaults to $OUT, else ./gpu-check-<time>
#   bash bench/gpu_check.sh --dry-run      # print the steps and their time limits, run nothing
#
# Every step has its own time limit (they sum to 480 s, the 8 minutes of a device call) and writes
# OUT_DIR/<step>.log; OUT_DIR/summary.md gets one row per step (exit status, seconds) and the
# benchmark tables. A failing step does not stop the next ones: one window should bring back all it can.
# Without a GPU (no driver found by nvidia-smi, or tinyml sees none) it says so and exits with status 3.
set -u
cd "$(dirname "$0")/.."

# name | seconds | command   (the budget: 480 s in all)
STEPS=(
  "build|120|pip install --no-build-isolation --no-deps -e ."
  "device|20|python -c 'import tinyml.cuda as c; assert c.is_available() and not c.emulated(), \"no real GPU\"; print(c.device_name())'"
  "tests|220|python -m pytest -p no:cacheprovider -q -W ignore -k cuda tests/ops tests/backends tests/nn tests/optim tests/test_amp.py tests/distributed/test_nccl.py"
  "gpu_kernels|80|python bench/gpu_kernels.py"
  "gpt_gpu|40|python bench/gpt_gpu.py"
)

if [[ "${1:-}" == "--dry-run" ]]; then
  for step in "${STEPS[@]}"; do IFS='|' read -r name limit cmd <<<"$step"; echo "$name ${limit}s: $cmd"; done
  exit 0
fi

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no GPU present (nvidia-smi is missing or lists no device); nothing was run" >&2
  exit 3
fi

OUT_DIR="${1:-${OUT:-gpu-check-$(date +%Y%m%d-%H%M%S)}}"
mkdir -p "$OUT_DIR"
unset TRITON_INTERPRET  # the real device, not the interpreter the test suite falls back to
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1
{ echo "# GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo; echo '| step | exit | seconds |'; echo '|---|---|---|'; } > "$OUT_DIR/summary.md"
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<<"$step"
  start=$(date +%s)
  timeout --kill-after=5 "$limit" bash -c "$cmd" > "$OUT_DIR/$name.log" 2>&1
  status=$?
  [[ $status == 124 ]] && status="124 (over ${limit}s)"
  echo "| $name | $status | $(( $(date +%s) - start )) |" >> "$OUT_DIR/summary.md"
  echo "gpu_check: $name: exit $status, log $OUT_DIR/$name.log"
  if [[ $name == device && $status != 0 ]]; then
    echo "gpu_check: tinyml sees no real GPU (see $OUT_DIR/device.log); stopping" >&2
    exit 3
  fi
done
for bench in gpu_kernels gpt_gpu; do
  { echo; echo "## $bench"; echo; echo '```'; tail -n 40 "$OUT_DIR/$bench.log"; echo '```'; } >> "$OUT_DIR/summary.md"
done
{ echo; echo "## tests"; echo; tail -n 3 "$OUT_DIR/tests.log"; } >> "$OUT_DIR/summary.md"
echo "gpu_check: results in $OUT_DIR/summary.md"
