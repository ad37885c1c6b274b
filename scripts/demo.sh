#!/usr/bin/env bash
# Start ComfyUI with the pack on 127.0.0.1:PORT (CPU unless a CUDA GPU is present).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${1:-8188}"
PY="$ROOT/.host/venv/bin/python"
BASE="$ROOT/.host/demo"
mkdir -p "$BASE/custom_nodes"
ln -sfn "$ROOT" "$BASE/custom_nodes/comfy-papa"

MODELS="$("$PY" - "$ROOT" <<'PY'
import sys
sys.path.insert(0, sys.argv[1] + "/tests")
from harness.tiny_models import ensure_tiny_models
print(ensure_tiny_models())
PY
)"
for sub in checkpoints vae_approx; do
  mkdir -p "$BASE/models/$sub"
  for f in "$MODELS/$sub"/*; do ln -sfn "$f" "$BASE/models/$sub/$(basename "$f")"; done
done

DEVICE_ARGS=(--cpu)
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  DEVICE_ARGS=()
fi
echo
echo "  comfy-papa demo: open http://127.0.0.1:$PORT"
echo "  Open the workflow: ComfyUI logo (top left) > Browse Templates > Extensions: comfy-papa"
echo "  > papa_digits_demo (on a first visit the template browser opens by itself)."
echo "  (the digits model ships with the pack: no download, runs on the CPU)."
echo "  papa_loop_sd15 / epapa_loop_sdxl are the same loop for your own checkpoints"
echo "  (papa_tiny_sd15.safetensors, a tiny random test checkpoint, is there to try the wiring)."
echo
cd "$ROOT/.host/ComfyUI"
# latent2rgb: sampler previews from the model's own latent colours, no TAESD download (the
# digits model has no TAESD at all; taesd would log "could not find models/vae_approx/None").
exec "$PY" main.py "${DEVICE_ARGS[@]}" --listen 127.0.0.1 --port "$PORT" \
  --base-directory "$BASE" --disable-api-nodes --preview-method latent2rgb
