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


# The other families: each in its own root, because ensure_tiny_models() clears MODEL_CACHE of
# every other digest, and these files (full-size random CLIP-G / OpenCLIP-H / CLIP-G: SDXL ~2 GB,
# SD2 ~1 GB, SD3 ~1.8 GB) are only made for the tests that ask for them.
SDXL_SCRIPT = REPO / "scripts" / "make_tiny_sdxl.py"
SDXL_CHECKPOINT = "papa_tiny_sdxl.safetensors"
SD2_SCRIPT = REPO / "scripts" / "make_tiny_sd2.py"
SD2_CHECKPOINT = "papa_tiny_sd2v.safetensors"
SD3_SCRIPT = REPO / "scripts" / "make_tiny_sd3.py"
SD3_CHECKPOINT = "papa_tiny_sd3.safetensors"


def _ensure_family(script, root):
    """Return root/<digest>, (re)generating it when the script or its helpers changed."""
    digest = hashlib.sha256(script.read_bytes() + SCRIPT.read_bytes()).hexdigest()[:16]
    out = root / digest
    if not (out / ".done").exists():
        for stale in root.glob("*") if root.exists() else []:
            shutil.rmtree(stale, ignore_errors=True)
        subprocess.run([str(VENV_PYTHON), str(script), str(COMFYUI), str(out)], check=True)
        (out / ".done").write_text("ok\n")
    return out


def ensure_tiny_sdxl():
    return _ensure_family(SDXL_SCRIPT, MODEL_CACHE.parent / "test-models-sdxl")


def ensure_tiny_sd2():
    return _ensure_family(SD2_SCRIPT, MODEL_CACHE.parent / "test-models-sd2")


def ensure_tiny_sd3():
    return _ensure_family(SD3_SCRIPT, MODEL_CACHE.parent / "test-models-sd3")
