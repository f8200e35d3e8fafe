#!/usr/bin/env bash
# The default run, start to finish: set up, build `aha`, make the base model with `aha pretrain` (configs/base.json,
# skipped when runs/base/model exists), then run R1-Zero-style GRPO on it with the embedded default config
# (configs/default.json). Prints the held-out accuracy before and after RL and the path of the plot.
# Extra arguments go to `aha train`, e.g. --set train.steps=30. A previous runs/default is moved to runs/default.prev.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$AHA_ROOT/scripts/setup.sh"
aha_configure >/dev/null
cmake --build "$AHA_BUILD" --target aha_cli
cd "$AHA_ROOT"
start=$(date +%s)
if [[ ! -f runs/base/model/config.json ]]; then
  rm -rf runs/base
  "$AHA_BUILD/aha" pretrain --config configs/base.json
fi
if [[ -d runs/default ]]; then
  rm -rf runs/default.prev
  mv runs/default runs/default.prev
fi
"$AHA_BUILD/aha" train "$@"
echo "run time (pretraining + RL, after the build): $(( $(date +%s) - start )) s"
