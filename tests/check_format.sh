#!/usr/bin/env bash
# Fails, listing the files, when a C++ or CUDA source is not formatted with the repository's .clang-format.
#   tests/check_format.sh SOURCE_DIR        fix with: clang-format -i <files>
set -euo pipefail
cd "$1"
mapfile -t files < <(find include src kernels tests examples -type f \
  \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "not clang-formatted (run: clang-format -i ${bad[*]}):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "${#files[@]} files formatted"
