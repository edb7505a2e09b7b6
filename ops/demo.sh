#!/usr/bin/env bash
# The main job. For now: the int8 GEMM + Freivalds benchmark on Llama-3-8B / Qwen2.5-7B shapes,
# with the libtorch comparison. (The local devnet demo replaces it once the watcher lands.)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash ops/setup.sh "$@"
# shellcheck source=ops/env.sh
source ops/env.sh
features=()
[ -x "$VERINFER_VENV/bin/python" ] && features=(--features tch)
cargo run --release --locked -p verinfer "${features[@]}" -- bench gemm
