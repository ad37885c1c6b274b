# Source this at the start of a `device` call (a session lent a GPU): makes the pinned host and
# the pack importable with the GPU image's own python3 (torch + CUDA, numpy, safetensors, pillow,
# transformers, ...; nothing can be downloaded there). See /work/.library/device/README.md.
#
# The call must carry:
#   .host/ComfyUI   the pinned host tree (~25 MB, ignored by git)
#   .whl            wheels of what the host imports and the image lacks (pure Python, < 1 MB);
#                   prepare once here, in the repo root:
#     echo /.whl/ >> .git/info/exclude
#     .host/venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl torchsde trampoline
# `av` (PyAV) is imported at module level by comfy_api.latest but never called by the benchmarks;
# its wheel (~35 MB) does not fit beside the host tree, so an empty package stands in for it
# when the image has none (only on that throw-away machine, only for the benchmarks).
export PY=${PY:-python3}
export PYTHONUNBUFFERED=1
export OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || return 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PY" -c "import av" 2>/dev/null; then
  mkdir -p /tmp/stub/av/subtitles
  printf 'def __getattr__(name):\n    raise ImportError("av stub: " + name)\n' \
    > /tmp/stub/av/__init__.py
  printf 'class InputContainer: pass\nclass OutputContainer: pass\n' > /tmp/stub/av/container.py
  : > /tmp/stub/av/subtitles/__init__.py
  printf 'class SubtitleStream: pass\n' > /tmp/stub/av/subtitles/stream.py
  export PYTHONPATH=/tmp/stub${PYTHONPATH:+:$PYTHONPATH}
fi
test -f .host/ComfyUI/comfy/sd.py || { echo "carry .host/ComfyUI"; return 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
