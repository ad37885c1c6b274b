"""Tiny random models made with ComfyUI's own classes, generated once and cached in .host/."""

import hashlib
import shutil
import subprocess

from .paths import COMFYUI, MODEL_CACHE, REPO, VENV_PYTHON

SCRIPT = REPO / "scripts" / "make_tiny_models.py"
CHECKPOINT = "papa_tiny_sd15.safetensors"


def ensure_tiny_models():
    """Return the cache folder, (re)generating it when the generator script changed."""
    digest = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:16]
    out = MODEL_CACHE / digest
    if not (out / ".done").exists():
        for stale in MODEL_CACHE.glob("*") if MODEL_CACHE.exists() else []:
            shutil.rmtree(stale, ignore_errors=True)  # made by an older generator script
        subprocess.run([str(VENV_PYTHON), str(SCRIPT), str(COMFYUI), str(out)], check=True)
        (out / ".done").write_text("ok\n")
    return out
