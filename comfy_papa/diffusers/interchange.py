"""Load a PAPA / ComfyUI LoRA into a diffusers pipeline or bare UNet.

A ComfyUI-layout LoRA (what PAPA Export LoRA writes, LDM names) is renamed to the kohya layout
with diffusers' own converters (`keys.comfy_to_kohya`); any layout diffusers reads itself passes
through. diffusers then builds the peft adapter (`load_lora_weights` / `load_lora_into_unet`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from .keys import comfy_to_kohya, is_comfy_layout


def diffusers_lora(sd: dict[str, torch.Tensor], unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A LoRA state dict in a layout diffusers' loaders read (comfy layout -> kohya)."""
    return comfy_to_kohya(sd, unet) if is_comfy_layout(sd) else dict(sd)


def load_lora(
    pipe_or_unet, lora: str | Path | dict[str, torch.Tensor], adapter_name: str = "papa_lora"
) -> None:
    """`pipe.load_lora_weights` for PAPA/ComfyUI LoRAs too; a bare UNet goes through the SD
    pipeline's `lora_state_dict` + `load_lora_into_unet` (the same code path)."""
    sd = load_file(str(lora)) if isinstance(lora, str | Path) else lora
    unet = getattr(pipe_or_unet, "unet", pipe_or_unet)
    sd = diffusers_lora(sd, unet)
    if hasattr(pipe_or_unet, "load_lora_weights"):
        pipe_or_unet.load_lora_weights(sd, adapter_name=adapter_name)
        return
    state, alphas = StableDiffusionPipeline.lora_state_dict(sd)
    StableDiffusionPipeline.load_lora_into_unet(state, alphas, unet, adapter_name=adapter_name)
