#!/usr/bin/env bash
# The main job: the whole rollup on a local anvil devnet (`verinfer devnet`), every user's
# journey played on it. Set-up first (idempotent), then a release build, then the demo.
# Usage: bash ops/demo.sh [--no-torch] [devnet flags, e.g. --keep, --workers 3, --synthetic]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
setup_args=()
devnet_args=()
for a in "$@"; do
  case "$a" in
    --no-torch) setup_args+=("$a") ;;
    *) devnet_args+=("$a") ;;
  esac
done
bash ops/setup.sh "${setup_args[@]}"
# shellcheck source=ops/env.sh
source ops/env.sh
cargo build --release --locked -p verinfer
# The devnet's cheating worker: the same binary with one fault injected (a separate target).
cargo build --release --locked -p verinfer --features fault-injection --bin verinfer-faulty
exec "${CARGO_TARGET_DIR:-$repo/target}/release/verinfer" devnet "${devnet_args[@]}"
