#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before scripts/gpu_check.sh: downloads the Debian -dev packages aha builds with
# into .debs/ (git-ignored), since the GPU machine has no network and no -dev packages. Then call the device tool with
#   command: bash scripts/gpu_check.sh      carry: [".debs"]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs
cd .debs
pkgs=(libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev
  libpcre2-dev libpcre2-8-0 libgloo-dev libpng-dev libpng16-16 zlib1g-dev)
have=$(ls 2>/dev/null || true)
for p in "${pkgs[@]}"; do
  case "$have" in *"${p}_"*) ;; *) apt-get download -qq "$p" ;; esac
done
ls -la
