#!/usr/bin/env bash
# Installs aha from the build tree into a scratch prefix, then builds and runs examples/consumer against it as an
# outside project would (find_package(aha); torch found through the hint aha's package config carries), and the
# reward examples: examples/custom_reward, and examples/reward_plugin loaded by the installed `aha score`.
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

# The reward examples against the same install: a program that registers its own C++ reward, and a plugin that
# the installed CLI loads from a config, next to a built-in and the Python process example.
for example in custom_reward reward_plugin; do
  cmake -S "$src/examples/$example" -B "$work/$example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >"$work/$example.log" 2>&1 || {
    cat "$work/$example.log"
    exit 1
  }
  cmake --build "$work/$example"
done
"$work/custom_reward/custom_reward"
cat >"$work/rewards.json" <<JSON
[{"name": "format"},
 {"name": "reasoning_steps", "plugin": "$work/reward_plugin/libmyreward.so", "params": {"target": 1}},
 {"name": "process", "params": {"argv": ["python3", "$src/examples/reward_process/reward.py"], "timeout_s": 30}}]
JSON
"$work/prefix/bin/aha" score --rewards "$work/rewards.json" --input "$src/tests/data/reward/samples.jsonl" |
  tee "$work/score.txt"
grep -q "^reasoning_steps .* 5 " "$work/score.txt"
grep -q "^process .* 4 .* 1 .* 0$" "$work/score.txt"
