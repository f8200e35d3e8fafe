#!/usr/bin/env bash
# Installs what aha needs to build and test, and nothing that is already there. Safe to run any number of times.
#   - Debian packages: compilers' helpers and libraries (fmt, spdlog, CLI11, nlohmann_json, GoogleTest, PCRE2, ...)
#   - LibTorch, from the PyPI torch wheel pinned below, into a virtual environment OUTSIDE the clone
#     (default ~/.cache/aha/venv; AHA_VENV overrides) so that a rebuild never downloads it again.
# Prints nothing but progress; the venv's python is $AHA_VENV/bin/python afterwards.
set -euo pipefail

TORCH_VERSION=2.11.0
AHA_VENV=${AHA_VENV:-$HOME/.cache/aha/venv}

DEB_PACKAGES=(cmake ninja-build ccache g++ clang-format pkg-config binutils
  libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  libpcre2-dev libbenchmark-dev libgloo-dev libpng-dev zlib1g-dev)

say() { printf '[setup] %s\n' "$*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; return 1; fi
}

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

torch_ok() {
  [ -x "$AHA_VENV/bin/python" ] &&
    "$AHA_VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" \
      2>/dev/null
}

if torch_ok; then
  say "torch $TORCH_VERSION: present in $AHA_VENV"
else
  PY=$(command -v python3)
  if [ ! -x "$AHA_VENV/bin/python" ]; then
    say "creating virtual environment $AHA_VENV"
    mkdir -p "$(dirname "$AHA_VENV")"
    if ! "$PY" -m venv "$AHA_VENV" 2>/dev/null; then
      # Debian's python3 needs python3-venv for ensurepip.
      sudo_if_needed apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$AHA_VENV"
      "$PY" -m venv "$AHA_VENV"
    fi
  fi
  say "installing torch==$TORCH_VERSION into $AHA_VENV (about 3 GB, once)"
  "$AHA_VENV/bin/pip" install -q --progress-bar off "torch==$TORCH_VERSION"
  torch_ok || { say "torch $TORCH_VERSION did not install into $AHA_VENV"; exit 1; }
fi
