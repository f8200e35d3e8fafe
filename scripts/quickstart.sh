#!/usr/bin/env bash
# Sets everything up, builds the `aha` executable, and runs the main job on the embedded default config
# (configs/default.json, compiled in). Extra arguments go to that job, e.g. --set train.steps=50.
# Until the trainer lands (see CHANGELOG.md), the main job is what exists: the build report and the resolved run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$AHA_ROOT/scripts/setup.sh"
aha_configure -DAHA_BUILD_TESTS=ON -DAHA_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$AHA_BUILD" --target aha_cli
"$AHA_BUILD/aha" info
"$AHA_BUILD/aha" config "$@"
