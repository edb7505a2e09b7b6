#!/usr/bin/env bash
# The long randomized campaign of e2e/tests/honest.rs (CI runs 20 journeys; this runs
# VERINFER_E2E_RUNS, default 100) and the crash and cheat tests, against freshly built binaries.
# Record the printed result in docs/DEVNET.md.
# Usage: bash ops/e2e-campaign.sh [RUNS] [SEED]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=ops/env.sh
source ops/env.sh
export VERINFER_E2E_RUNS=${1:-${VERINFER_E2E_RUNS:-100}}
export VERINFER_E2E_SEED=${2:-${VERINFER_E2E_SEED:-$(date +%s)}}
cargo build --locked -p verinfer
cargo build --locked -p verinfer --features fault-injection --bin verinfer-faulty
start=$(date +%s)
cargo test --locked -p verinfer-e2e --test honest -- --nocapture 2>&1 | grep -E "^(campaign|run |test result)"
echo "campaign: $VERINFER_E2E_RUNS honest journeys, seed $VERINFER_E2E_SEED, $(( $(date +%s) - start )) s on $(lscpu | sed -n 's/^Model name: *//p')"
