"""Load ComfyUI and the pack inside this process (for benchmarks; tests use a real server)."""

from __future__ import annotations

import sys
from pathlib import Path

# The tests' tiny models (tests/harness, from the repository root), imported before `boot` puts
# ComfyUI first on sys.path: ComfyUI has a `tests` package of its own.
from tests.harness.tiny_models import CHECKPOINT, ensure_tiny_models

REPO = Path(__file__).resolve().parents[1]
COMFYUI = REPO / ".host" / "ComfyUI"


def boot(device: str = "cpu") -> None:
    """Import ComfyUI as `main.py` would: its folder first on sys.path (where `python main.py`
    has it; ComfyUI is no installed package) and its command line (--cpu). The pack is imported
    as `comfy_papa` from the repository root, where the bench runs (`python -m bench.<name>`)."""
    sys.path.insert(0, str(COMFYUI))
    sys.argv = [sys.argv[0]] + (["--cpu"] if device == "cpu" else [])
    import comfy.options

    comfy.options.enable_args_parsing()


def tiny_checkpoint() -> Path:
    return ensure_tiny_models() / "checkpoints" / CHECKPOINT


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
