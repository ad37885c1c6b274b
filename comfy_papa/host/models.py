"""Identify ComfyUI models: a base-model fingerprint, and the marker of a personalised model."""

from __future__ import annotations

import hashlib

import torch

PERSONALISED_KEY = "comfy_papa.personalised"


def model_fingerprint(model) -> str:
    """A short stable id of the base model behind a ModelPatcher.

    Hashes the model class, every parameter's name and shape, and the values of the 1-D
    normalisation weights. Adapters (ours or any LoRA) patch only matrices and convolutions and
    ComfyUI patches weights in place while a model is loaded, so the norms are the values that stay
    the same whatever is applied on top.
    """
    h = hashlib.sha256()
    inner = model.model
    h.update(type(inner).__name__.encode())
    h.update(type(inner.model_config).__name__.encode())
    for name, p in inner.diffusion_model.named_parameters():
        h.update(f"{name}:{tuple(p.shape)};".encode())
        if p.ndim == 1 and "norm" in name:
            h.update(p.detach().to(device="cpu", dtype=torch.float32).numpy().tobytes())
    return h.hexdigest()[:16]


def personalised_info(model) -> dict | None:
    """The marker a comfy-papa node leaves on the MODEL it outputs, or None for a base model."""
    return model.get_attachment(PERSONALISED_KEY)


def require_base_model(model, node: str) -> None:
    """Refuse a personalised MODEL where the base one is needed (adapters must never stack)."""
    info = personalised_info(model)
    if info is not None:
        raise ValueError(
            f"{node}: this MODEL is already personalised by profile '{info['profile']}' "
            f"(round {info['round']}). Connect the checkpoint's own MODEL here, not the output of "
            "PAPA Apply Profile or PAPA Fine-tune, so that adapters do not stack round over round."
        )
