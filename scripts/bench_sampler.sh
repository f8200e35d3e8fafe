#!/usr/bin/env bash
# Sampler benchmark: aha's rollout sampler against transformers' generate on the same ~20M-parameter checkpoint,
# decode tokens/s at batch sizes 1, 16 and 64 (CPU, fp32), run one after the other, printed with the ratios.
#   scripts/bench_sampler.sh [--batches 1,16,64] [--new-tokens 64] [--prompt-len 64] [--threads 2]
# Builds bench_sampler in build-bench (AHA_BUILD_BENCH_DIR), writes the checkpoint with `aha init` from
# configs/model/bench_20m.json (random weights, seed 0), needs transformers 5.24 in the venv for the peer.
set -euo pipefail
source "$(dirname "$0")/env.sh"
AHA_BUILD=${AHA_BUILD_BENCH_DIR:-$AHA_ROOT/build-bench}
args=("$@")
aha_configure -DAHA_BUILD_BENCH=ON -DAHA_CUDA=OFF >/dev/null
cmake --build "$AHA_BUILD" --target bench_sampler aha_cli >/dev/null
out=$AHA_BUILD/bench
mkdir -p "$out"
ckpt=$out/sampler_model
if [ ! -f "$ckpt/config.json" ]; then
  # A fresh model from the bench config, saved in HF format so both sides read the same weights.
  "$AHA_BUILD/aha" init --config "$AHA_ROOT/configs/model/bench_20m.json" --output "$ckpt" --seed 0 >/dev/null
fi
echo "== aha"
"$AHA_BUILD/tests/bench/bench_sampler" --model "$ckpt" --json "$out/sampler_aha.json" "${args[@]}"
echo "== transformers"
"$AHA_PYTHON" "$AHA_ROOT/scripts/bench_sampler_peer.py" --model "$ckpt" --json "$out/sampler_hf.json" "${args[@]}"
"$AHA_PYTHON" - "$out/sampler_aha.json" "$out/sampler_hf.json" <<'PY'
import json, sys
a = {r["batch"]: r for r in json.load(open(sys.argv[1]))["results"]}
h = {r["batch"]: r for r in json.load(open(sys.argv[2]))["results"]}
# cpu ratio: transformers' process CPU seconds per generate call (prefill + decode) over aha's; with
# --threads 1 it is the figure least moved by other jobs on a shared machine.
print("batch  aha decode tok/s  transformers decode tok/s  ratio  cpu ratio")
for b in sorted(a):
    print(f"{b:5d}  {a[b]['decode_tokens_per_second']:16.1f}  {h[b]['decode_tokens_per_second']:25.1f}  "
          f"{a[b]['decode_tokens_per_second'] / h[b]['decode_tokens_per_second']:5.2f}  "
          f"{h[b]['cpu_seconds'] / a[b]['cpu_seconds']:9.2f}")
PY
