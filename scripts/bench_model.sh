#!/usr/bin/env bash
# CPU model benchmark: aha's Transformer against transformers' DeepseekV3ForCausalLM on the same config,
# forward and forward+backward tokens/s, fp32, printed as a table with the ratio aha / transformers.
#
#   scripts/bench_model.sh [--config PATH] [--batch 8] [--seq 256] [--iters 5] [--warmup 2] [--threads 2]
#                          [--out DIR]
#
# Configures and builds the bench_model target in its own build folder (AHA_BUILD_BENCH_DIR, default
# build-bench, never the main build folder; AHA_BUILD_BENCH=ON, tests off, CUDA off: the benchmark is CPU
# only), runs tests/bench/bench_model, then scripts/bench_model_peer.py with the same settings (AHA_PYTHON,
# by default the venv's python; transformers 5.24 must be installed there, see the peer script), one after
# the other. Both write JSON into --out (default <build folder>/bench); the table is printed at the end:
# tok/s from each side's median iteration, their ratio, and the ratio of the best iterations (less sensitive
# to other load on the machine).
set -euo pipefail
source "$(dirname "$0")/env.sh"
AHA_BUILD=${AHA_BUILD_BENCH_DIR:-$AHA_ROOT/build-bench}

config=$AHA_ROOT/configs/model/bench_20m.json
batch=8 seq=256 iters=5 warmup=2 threads=2 out=
while [ $# -gt 0 ]; do
  case $1 in
    --config) config=$2 ;;
    --batch) batch=$2 ;;
    --seq) seq=$2 ;;
    --iters) iters=$2 ;;
    --warmup) warmup=$2 ;;
    --threads) threads=$2 ;;
    --out) out=$2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench_model.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
out=${out:-$AHA_BUILD/bench}
mkdir -p "$out"

mkdir -p "$AHA_BUILD"
if ! aha_configure -DAHA_BUILD_BENCH=ON -DAHA_BUILD_TESTS=OFF -DAHA_BUILD_EXAMPLES=OFF -DAHA_CUDA=OFF \
  >"$AHA_BUILD/bench_configure.log" 2>&1; then
  cat "$AHA_BUILD/bench_configure.log" >&2
  exit 1
fi
cmake --build "$AHA_BUILD" --target bench_model

args=(--config "$config" --batch "$batch" --seq "$seq" --iters "$iters" --warmup "$warmup" --threads "$threads")
# One thread count for every library each side may use (OpenMP, MKL, OpenBLAS).
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads

echo "== aha"
"$AHA_BUILD/tests/bench/bench_model" "${args[@]}" --json "$out/aha.json"
echo "== transformers"
"$AHA_PYTHON" "$AHA_ROOT/scripts/bench_model_peer.py" "${args[@]}" --json "$out/transformers.json"

"$AHA_PYTHON" - "$out/aha.json" "$out/transformers.json" <<'PY'
import json, sys
a, t = (json.load(open(p)) for p in sys.argv[1:3])
print()
print(f"batch {a['batch']} x seq {a['seq']}, fp32 CPU, {a['threads']} threads, {a['iters']} iters "
      f"(median) after {a['warmup']} warmup; parameters {a['params_total'] / 1e6:.2f}M total, "
      f"{a['params_active'] / 1e6:.2f}M active; transformers {t['transformers']} "
      f"(attn {t['attn_implementation']}, experts {t['experts_implementation']})")
if a["params_total"] != t["params_total"]:
    print(f"WARNING: parameter counts differ: aha {a['params_total']}, transformers {t['params_total']}")
print(f"{'mode':<18}{'aha tok/s':>12}{'transformers tok/s':>20}{'aha/transformers':>18}"
      f"{'ratio (best iter)':>19}")
for mode in ("forward", "forward_backward"):
    x, y = a[mode]["tokens_per_s"], t[mode]["tokens_per_s"]
    xb, yb = a[mode]["tokens_per_s_best"], t[mode]["tokens_per_s_best"]
    print(f"{mode:<18}{x:>12.1f}{y:>20.1f}{x / y:>18.2f}{xb / yb:>19.2f}")
PY
