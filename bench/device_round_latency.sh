#!/usr/bin/env bash
# The GPU run of bench/round_latency.py, as ONE call of the `device` tool (a session lent a GPU).
# Untested on a GPU: no session has had one yet. Written for the image described in
# /work/.library/device/KINDS.md (python3 3.12 with torch 2.11 + cu130, numpy, safetensors,
# pillow, einops, transformers, tokenizers, sentencepiece, scipy, tqdm, psutil, pyyaml, aiohttp;
# nothing can be downloaded there).
#
# What the call needs (the 6.7 GB .host/venv cannot travel: the carry limit is 64 MiB):
#   1. the pinned host tree: carry ".host/ComfyUI" (~25 MB, ignored by git);
#   2. wheels for what the in-process boot imports and the image lacks: torchsde and trampoline
#      (pure Python, < 1 MB). Prepare them HERE once, in the repo root:
#        echo /.whl/ >> .git/info/exclude
#        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#          --implementation cp --platform manylinux2014_x86_64 -d .whl torchsde trampoline
#   3. `av` (PyAV) is imported at module level by comfy_api.latest (used by TrainLoraNode's
#      module) but never called by this benchmark; its wheel is ~35 MB, too big beside the host
#      tree, so this script installs a stub `av` when the image has none.
#
# Call:  run(command="bash bench/device_round_latency.sh", carry=[".host/ComfyUI", ".whl"],
#            timeout_s=590)
# Budget: 15 min of device time per task, start included; this script stops itself at ~9.5 min.
# Fine-tune steps are cut to FT_STEPS (default 6): the JSON/table also give the round projected
# to the default 20 steps from the measured s/step. Models run in the order sd15, sdxl, sd3, each
# under its own time limit, so a slow one does not cost the others their results.
set -uo pipefail
source bench/device_env.sh || exit 1
FT_STEPS=${FT_STEPS:-6}
EXTRA=${EXTRA:-}   # e.g. EXTRA="--checkpointing" or "--dtype bf16"
MODELS=${MODELS:-"sd15 sdxl sd3"}

run() {  # model, seconds
  timeout "$2" "$PY" bench/round_latency.py --device cuda --models "$1" --ft-steps "$FT_STEPS" \
    $EXTRA --out "$OUT/round_latency_cuda_$1.json" 2>&1 | tee "$OUT/log_$1.txt"
}
for m in $MODELS; do
  case $m in sd15) run sd15 120 ;; sdxl) run sdxl 220 ;; sd3) run sd3 200 ;; esac
done
ls -l "$OUT"
