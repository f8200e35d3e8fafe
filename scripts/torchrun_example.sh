#!/usr/bin/env bash
# A data-parallel GRPO run started by PyTorch's torchrun: `--no-python` runs the aha executable itself, one
# process per GPU; aha reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and connects to the store
# torchrun's agent hosts (TORCHELASTIC_USE_AGENT_STORE=True). No Python runs inside the ranks.
#
# One node, 8 GPUs:
#   scripts/torchrun_example.sh
# Two nodes (run on each; NODE_RANK 0 on the first, HEAD its address):
#   NNODES=2 NODE_RANK=0 HEAD=10.0.0.1 scripts/torchrun_example.sh     # on node 0
#   NNODES=2 NODE_RANK=1 HEAD=10.0.0.1 scripts/torchrun_example.sh     # on node 1
set -euo pipefail

TORCHRUN=${TORCHRUN:-torchrun}     # e.g. ~/.cache/aha/venv/bin/torchrun
AHA=${AHA:-$(command -v aha)}      # --no-python needs a path or a name in PATH
NPROC=${NPROC:-8}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
HEAD=${HEAD:-127.0.0.1}
PORT=${PORT:-29500}
CONFIG=${CONFIG:-configs/gsm8k.json}
RUN_DIR=${RUN_DIR:-runs/gsm8k-torchrun}   # shared by all nodes for checkpoints and resume

exec "$TORCHRUN" --no-python --nproc-per-node "$NPROC" --nnodes "$NNODES" --node-rank "$NODE_RANK" \
  --master-addr "$HEAD" --master-port "$PORT" \
  "$AHA" train -c "$CONFIG" --set train.run_dir="$RUN_DIR" "$@"
