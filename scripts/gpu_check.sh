#!/usr/bin/env bash
# The GPU check, run ON the lent GPU machine (one H200: torch 2.11.0+cu130 in its python3, CMake, ninja, nvcc 13.0,
# no network, no Debian -dev packages). Prepare here with scripts/gpu_bundle.sh, then run it through the device tool
# as ONE command with carry [".debs"]. It builds aha with the sm_90a kernels against that machine's torch, runs the
# whole test suite there (the CUDA tests run instead of skipping), and prints the figures to quote in notes.
# Everything it prints also lands in $OUT/gpu_check.log when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
log=${OUT:-/tmp}/gpu_check.log
exec > >(tee "$log") 2>&1
t0=$(date +%s)

# Debian packages carried in .debs/: unpacked into a private prefix, never into /.
if [ -d .debs ]; then
  prefix=/tmp/aha-debs
  mkdir -p "$prefix"
  for f in .debs/*.deb; do dpkg -x "$f" "$prefix"; done
  export AHA_EXTRA_PREFIX="$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake;$prefix/usr/share/cmake"
  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export AHA_PYTHON=${AHA_PYTHON:-python3}
export AHA_BUILD=${AHA_BUILD:-$PWD/build-gpu}
source scripts/env.sh

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nvcc --version | tail -1
"$AHA_PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'

echo "== configure + build (AHA_CUDA=ON)"
aha_configure -DAHA_CUDA=ON -DAHA_BUILD_TESTS=ON -DAHA_BUILD_EXAMPLES=ON -DAHA_BUILD_BENCH=ON >"$AHA_BUILD.configure.log" 2>&1 ||
  { tail -40 "$AHA_BUILD.configure.log"; exit 1; }
cmake --build "$AHA_BUILD" -j "$(nproc)" 2>&1 | tail -5
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
echo "build: $(($(date +%s) - t0)) s"

echo "== aha info"
"$AHA_BUILD/aha" info

echo "== tests (CUDA tests run here)"
ctest --test-dir "$AHA_BUILD" --output-on-failure -j 8 -E 'format_check'
rc=$?
echo "== CUDA tests, verbose"
"$AHA_BUILD/tests/aha_tests" --gtest_filter='*Cuda*:*Gpu*' 2>&1 | grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) +\]'
echo "== FP8 GEMM: aha vs cuBLASLt block-scaled FP8 vs BF16 cuBLAS (tests/bench/bench_fp8_gemm)"
timeout 180 "$AHA_BUILD/tests/bench/bench_fp8_gemm" --iters 20 --warmup 3 || echo "bench_fp8_gemm: rc=$?"
echo "== NCCL at world size 1: one GRPO step of a fresh tiny model through ProcessGroupNCCL"
rm -rf /tmp/aha-nccl-check; RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29541 "$AHA_BUILD/aha" train --set model.path= --set model.device=cuda --set dist.backend=nccl --set dist.bucket_mb=1 --set train.steps=1 --set train.prompts_per_step=2 --set data.eval_size=4 --set log.level=info --set train.run_dir=/tmp/aha-nccl-check 2>&1 | grep -E "data parallel|finished|error"; [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
# The gradient reducer's buckets through NCCL: grad_overlap 1 means every bucket started during the backward pass.
grep -o '"grad_[a-z_]*":[^,}]*' /tmp/aha-nccl-check/metrics.jsonl || echo "no grad_overlap / grad_sync_s in the metrics"
echo "== NCCL at world size 1, sharded: dist.shard full (model built on the host, moved in slices; all-gather / reduce-scatter per layer) with activation checkpointing and bf16 compute, 2 steps, then resumed for a third"
rm -rf /tmp/aha-nccl-full
for steps in 2 3; do
  args=(-c configs/default.json --set model.path= --set model.device=cuda --set model.precision=bf16 --set dist.backend=nccl --set dist.shard=full --set train.activation_checkpointing=true --set grpo.dynamic_sampling=false --set train.eval_every=0 --set data.eval_size=8 --set train.prompts_per_step=4 --set train.run_dir=/tmp/aha-nccl-full)
  [ "$steps" = 3 ] && args=(--resume /tmp/aha-nccl-full)
  RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29542 timeout 120 "$AHA_BUILD/aha" train "${args[@]}" --set train.steps=$steps 2>&1 | grep -E "dist.shard|finished|resumed|error"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "sharded NCCL run ($steps steps): failed"; rc=1; }
done
grep -o '"\(mem/[a-z]*\|weight_sync_s\|step_s\)":[^,}]*' /tmp/aha-nccl-full/metrics.jsonl | tail -5
echo "== the whole GRPO run on the GPU (sampler + trainer), 10 steps of the default config on a fresh tiny model (no dynamic sampling: its rewards are all 0)"
for prec in bf16 fp8; do
  rm -rf "/tmp/aha-gpu-$prec"
  timeout 120 "$AHA_BUILD/aha" train -c configs/default.json --set model.path= --set model.device=cuda \
    --set model.precision=$prec --set train.steps=10 --set grpo.dynamic_sampling=false \
    --set train.eval_every=0 --set data.eval_size=32 \
    --set train.run_dir="/tmp/aha-gpu-$prec" 2>&1 | grep -E "step 10/|finished|held-out|error|warn"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "GRPO on cuda in $prec: failed"; rc=1; }
  grep -o '"\(rollout_tok_s\|train_tok_s\|step_s\)":[^,}]*' "/tmp/aha-gpu-$prec/metrics.jsonl" | tail -3
done
echo "gpu_check: rc=$rc, $(($(date +%s) - t0)) s"
exit $rc
