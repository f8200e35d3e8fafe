#!/usr/bin/env bash
# A GRPO step, aha against TRL's GRPOTrainer on the same work (CPU): builds tests/bench/bench_grpo_step in
# build-bench (AHA_BUILD_BENCH_DIR), installs trl 1.16.0 into the venv when it is missing, and runs the bench for
# each shape given (default: default g16), printing aha's and TRL's seconds per step, their ratio and aha's
# time split.
#   scripts/bench_grpo_step.sh [--shapes default,g16,batch1,long] [bench_grpo_step flags...]
set -euo pipefail
source "$(dirname "$0")/env.sh"
AHA_BUILD=${AHA_BUILD_BENCH_DIR:-$AHA_ROOT/build-bench}
shapes=default,g16
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --shapes) shapes=$2; shift ;;
    -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done
aha_configure -DAHA_BUILD_BENCH=ON -DAHA_CUDA=OFF >/dev/null
cmake --build "$AHA_BUILD" --target bench_grpo_step aha_cli >/dev/null
"$AHA_PYTHON" -c 'import trl, sys; sys.exit(0 if trl.__version__ == "1.16.0" else 1)' 2>/dev/null ||
  "$AHA_PYTHON" -m pip install -q "trl==1.16.0"
export AHA_PYTHON
for shape in ${shapes//,/ }; do
  "$AHA_BUILD/tests/bench/bench_grpo_step" --shape "$shape" "${args[@]}" | grep -v '^\$'
done
