#!/usr/bin/env bash
# Builds the demo model's SKU, $VERINFER_SMOLLM2_SKU, from the checkpoint ops/setup.sh converted
# ($VERINFER_SMOLLM2), unless it is already newer than the checkpoint. Extra arguments go to
# `verinfer sku build` (default --max-seq 2048). Prints the SKU path last.
#
# Usage: bash ops/models/smollm2-sku.sh [--max-seq N]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
# shellcheck source=ops/env.sh
source ops/env.sh
weights="$VERINFER_SMOLLM2/model.safetensors"
if [ ! -f "$weights" ]; then
  echo "no SmolLM2 checkpoint at $VERINFER_SMOLLM2: run bash ops/setup.sh first" >&2
  exit 1
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--max-seq 2048)
if [ ! -f "$VERINFER_SMOLLM2_SKU" ] || [ "$weights" -nt "$VERINFER_SMOLLM2_SKU" ] || [ $# -gt 0 ]; then
  mkdir -p "$(dirname "$VERINFER_SMOLLM2_SKU")"
  cargo run --release --locked -p verinfer -- sku build --model "$VERINFER_SMOLLM2" \
    --out "$VERINFER_SMOLLM2_SKU" "${args[@]}" >&2
fi
echo "$VERINFER_SMOLLM2_SKU"
