#!/usr/bin/env bash
# On a networked machine: the wheels scripts/gpu_check.sh installs on the GPU machine, which has
# torch, transformers and most of their needs but not deepspeed, datasets, math-verify or fire.
# For CPython 3.12 on x86_64 (the GPU image's), into $URZ_WHEELS (default .whl/, git-ignored).
# Versions: the stack verified here (setup.py); --no-deps, so each missing need is named.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
out=${URZ_WHEELS:-.whl}
mkdir -p "$out"
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" -d "$out" \
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
  math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 \
  fire==0.7.1 termcolor==3.3.0 \
  hjson==3.1.0 pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
# DeepSpeed publishes only a source archive; its wheel is pure Python (ops compile on first use).
$PY -m pip wheel -q --no-deps -w "$out" deepspeed==0.19.8
ls -l "$out"
