"""Load ComfyUI and the pack inside this process (for benchmarks; tests use a real server)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFYUI = REPO / ".host" / "ComfyUI"


def boot(device: str = "cpu") -> None:
    """Import ComfyUI as `main.py` would, with its command line (--cpu), and make the pack
    importable as `comfy_papa`."""
    sys.path.insert(0, str(COMFYUI))
    sys.path.append(str(REPO))
    sys.argv = [sys.argv[0]] + (["--cpu"] if device == "cpu" else [])
    import comfy.options

    comfy.options.enable_args_parsing()


def tiny_checkpoint() -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from harness.tiny_models import CHECKPOINT, ensure_tiny_models

    return ensure_tiny_models() / "checkpoints" / CHECKPOINT


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
