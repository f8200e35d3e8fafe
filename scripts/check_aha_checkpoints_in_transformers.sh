#!/usr/bin/env bash
# Shows that checkpoints written by aha load in transformers and give the same logits, and records it.
# For each fixture: `aha convert` re-saves it the way aha saves checkpoints, transformers' from_pretrained loads the
# result (scripts/make_model_fixtures.py --check-aha), and the logits are compared with the fixture's expected ones.
# The record, tests/data/model/aha_saved.json, holds the SHA-256 of every file aha wrote and the measured difference;
# tests/model/test_checkpoint.cpp re-saves the same fixtures and checks that the bytes are still those transformers
# accepted.
#   needs: ~/.cache/aha/venv/bin/pip install transformers==5.24.0 safetensors numpy; a build in build/ (scripts/test.sh)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$AHA_ROOT"
aha="$AHA_BUILD/aha"
work=$(mktemp -d)
record="{"
first=1
for name in yarn_mtp_sharded plain_no_qlora fp8_blocks; do
  out="$work/$name"
  "$aha" convert --model "tests/data/model/$name" --output "$out" --max-shard-bytes 1000000 >/dev/null
  line=$("$AHA_PYTHON" scripts/make_model_fixtures.py --check-aha "$out" \
    --inputs "tests/data/model/$name/inputs.json" --expected "tests/data/model/$name/expected.safetensors")
  echo "$name: $line"
  diff=$(sed -n 's/.*max abs diff on non-padded positions: \([^ ]*\).*/\1/p' <<<"$line")
  files=""
  for f in $(cd "$out" && ls | sort); do
    files="$files${files:+, }\"$f\": \"$(sha256sum "$out/$f" | cut -d' ' -f1)\""
  done
  [ $first -eq 1 ] || record="$record,"
  first=0
  record="$record
  \"$name\": {\"max_shard_bytes\": 1000000, \"transformers_max_abs_diff\": $diff, \"files\": {$files}}"
done
tv=$("$AHA_PYTHON" -c 'import transformers; print(transformers.__version__)')
record="$record,
  \"transformers_version\": \"$tv\"
}"
echo "$record" >tests/data/model/aha_saved.json
rm -rf "$work"
echo "wrote tests/data/model/aha_saved.json"
