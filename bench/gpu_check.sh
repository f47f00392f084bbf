#!/usr/bin/env bash
# The GPU checks in one call, from the working tree, with the machine's own python3 (no install
# step): bench/gpu_check.py (the learner's GPU path, the colocated hand-off over CUDA IPC), then,
# where vLLM and Ray import (a user's GPU machine), bench/gpu.py (weight sync into a running vLLM
# engine, generation tokens/s against plain vLLM). Under 8 minutes on one H200.
#
# The learner reads its recipe sections through pydantic, which a bare torch image may lack:
# `make gpu-wheels` here puts its wheels in .gpu-wheels/, and carrying that folder is enough.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! "$py" -c "import pydantic" 2>/dev/null; then
  if compgen -G ".gpu-wheels/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --target /tmp/selfplay-gpu-site .gpu-wheels/*.whl
    export PYTHONPATH="/tmp/selfplay-gpu-site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "pydantic is missing here: run 'make gpu-wheels' on a machine with the project installed and carry .gpu-wheels/" >&2
    exit 2
  fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 360 "$py" bench/gpu_check.py "$@"
if "$py" -c "import torch, vllm, ray; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 300 "$py" bench/gpu.py --prompts 256 --repeats 3
else
  echo "no vLLM, Ray or CUDA here: the sync into a running vLLM engine and generation tokens/s (bench/gpu.py) not run"
fi
