"""Read what a prompt saved on the server: latents and images, from the server's output folder."""

from __future__ import annotations

import torch
from safetensors.torch import load_file


def saved_latent(server, result, node_id: str) -> torch.Tensor:
    """The tensor written by a SaveLatent node of a finished prompt."""
    info = result.outputs[node_id]["latents"][0]
    path = server.base / "output" / info["subfolder"] / info["filename"]
    return load_file(str(path))["latent_tensor"]


def ui_text(result, node_id: str) -> str:
    return "\n".join(result.outputs[node_id]["text"])
