# Sourced by the scripts: where the venv is, the CMake prefix path of its torch, and the default build folder.
AHA_VENV=${AHA_VENV:-$HOME/.cache/aha/venv}
# The python whose torch aha builds on: the venv's by default; a machine with torch preinstalled sets AHA_PYTHON.
AHA_PYTHON=${AHA_PYTHON:-$AHA_VENV/bin/python}
AHA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AHA_BUILD=${AHA_BUILD:-$AHA_ROOT/build}
aha_torch_prefix() { "$AHA_PYTHON" -W ignore -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null; }
aha_configure() {
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  cmake -S "$AHA_ROOT" -B "$AHA_BUILD" -G Ninja -DCMAKE_BUILD_TYPE="${AHA_BUILD_TYPE:-Release}" \
    -DCMAKE_PREFIX_PATH="$(aha_torch_prefix)${AHA_EXTRA_PREFIX:+;$AHA_EXTRA_PREFIX}" -DPython_EXECUTABLE="$AHA_PYTHON" \
    "${launcher[@]}" "$@"
}
