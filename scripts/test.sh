#!/usr/bin/env bash
# Sets everything up, builds aha and its tests, and runs the whole test suite (output shown for failures).
#   scripts/test.sh [ctest args...]      e.g. scripts/test.sh -R safetensors
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$AHA_ROOT/scripts/setup.sh"
aha_configure -DAHA_BUILD_TESTS=ON -DAHA_BUILD_EXAMPLES=ON
cmake --build "$AHA_BUILD"
ctest --test-dir "$AHA_BUILD" --output-on-failure "$@"
