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


SDXL_SCRIPT = REPO / "scripts" / "make_tiny_sdxl.py"
SDXL_CHECKPOINT = "papa_tiny_sdxl.safetensors"
# Its own root: ensure_tiny_models() clears MODEL_CACHE of every other digest, and the ~2 GB
# SDXL file (full-size random CLIP-G) is only made for the tests that ask for it.
SDXL_CACHE = MODEL_CACHE.parent / "test-models-sdxl"


def ensure_tiny_sdxl():
    """Return the tiny SDXL cache folder, (re)generating it when either generator script changed."""
    digest = hashlib.sha256(SDXL_SCRIPT.read_bytes() + SCRIPT.read_bytes()).hexdigest()[:16]
    out = SDXL_CACHE / digest
    if not (out / ".done").exists():
        for stale in SDXL_CACHE.glob("*") if SDXL_CACHE.exists() else []:
            shutil.rmtree(stale, ignore_errors=True)
        subprocess.run([str(VENV_PYTHON), str(SDXL_SCRIPT), str(COMFYUI), str(out)], check=True)
        (out / ".done").write_text("ok\n")
    return out
