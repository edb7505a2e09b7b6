#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the tools (ops/setup.sh), then
# formatting, lints, Solidity tests, Rust tests (with the end-to-end suite in e2e/), and the
# libtorch (`tch`) backend on CPU.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash ops/setup.sh "$@"
# shellcheck source=ops/env.sh
source ops/env.sh

step() { echo; echo "==> $*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (default features)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ -f l1-bridge/contracts/foundry.toml ]; then
  step "forge test (l1-bridge/contracts)"
  (cd l1-bridge/contracts && forge build --sizes >/dev/null && forge test && forge snapshot --check)
fi

step "cargo clippy + build of verinfer-faulty (the worker with fault injection, for e2e/)"
cargo clippy -p verinfer --all-targets --features fault-injection --locked -- -D warnings
cargo build -p verinfer --features fault-injection --bin verinfer-faulty --locked

step "cargo test (workspace; e2e/ runs the real binaries as processes)"
cargo test --workspace --locked

if [ -x "$VERINFER_VENV/bin/python" ]; then
  step "clippy + tests of the libtorch backend (feature tch, CPU)"
  cargo clippy -p verinfer-gpu --all-targets --features tch --locked -- -D warnings
  cargo test -p verinfer-gpu --features tch --locked
fi
echo
echo "all tests passed"
