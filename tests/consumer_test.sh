#!/usr/bin/env bash
# Installs aha from the build tree into a scratch prefix, then builds and runs examples/consumer against it as an
# outside project would (find_package(aha); torch found through the hint aha's package config carries).
#   tests/consumer_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$build/consumer-test
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/examples/consumer" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >"$work/configure.log" 2>&1 || {
  cat "$work/configure.log"
  exit 1
}
cmake --build "$work/build"
"$work/build/consumer"
# The installed CLI runs from the prefix too.
"$work/prefix/bin/aha" --version
