"""Where the provisioned host lives."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = REPO / ".host"
COMFYUI = HOST / "ComfyUI"
VENV_PYTHON = HOST / "venv" / "bin" / "python"
MODEL_CACHE = HOST / "test-models"
ARTIFACTS = REPO / "tests" / "artifacts"
