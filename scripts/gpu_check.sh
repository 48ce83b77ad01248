#!/usr/bin/env bash
# The one-GPU check of the recipe path (README "GPU check"): ZeRO-2 then ZeRO-3, bf16, gradient
# checkpointing, 2 RL steps + evaluation + save, then a resumed step; prints peak GPU memory,
# the step split, tokens/s and MFU (scripts/gpu_check.py). At most ~6 minutes on one H200.
#
#   bash scripts/gpu_check.sh                  # on the GPU machine, from the repo root
#   bash scripts/gpu_check.sh --preset tiny    # the same script on CPU, in seconds
#
# The GPU machine has torch and transformers but not deepspeed, datasets, math-verify or fire:
# those come from wheels in $URZ_WHEELS (default .whl/, made on a networked machine by
# `bash scripts/gpu_wheels.sh`), installed into a private target dir, never over the image.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${URZ_WHEELS:-.whl}
missing=()
for m in deepspeed datasets math_verify fire; do
  $PY -c "import $m" 2>/dev/null || missing+=("$m")
done
if ((${#missing[@]})); then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "gpu_check: ${missing[*]} not installed and no wheels in $WHEELS; run scripts/gpu_wheels.sh on a networked machine" >&2
    exit 2
  fi
  site=${URZ_SITE:-/tmp/urz_site}
  echo "gpu_check: ${missing[*]} missing; installing from $WHEELS into $site: $(cd "$WHEELS" && ls *.whl | tr '\n' ' ')"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$WHEELS"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
$PY -c "import torch, transformers, deepspeed, datasets, math_verify, fire; print('gpu_check: torch', torch.__version__, '| transformers', transformers.__version__, '| deepspeed', deepspeed.__version__, '| cuda', torch.cuda.is_available())"
exec timeout "${URZ_GPU_CHECK_TIMEOUT:-420}" $PY scripts/gpu_check.py "$@"
