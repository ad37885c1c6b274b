"""PAPA on diffusers models (optional: needs `pip install comfy-papa[diffusers]`).

The same `comfy_papa.core` objective and `comfy_papa.profile` store as the ComfyUI nodes, driving a
diffusers UNet2DModel / UNet2DConditionModel with its DDPM-family scheduler and a peft LoRA.
Nothing here imports ComfyUI, and nothing in the node pack imports this package.
"""

from .adapters import PeftAdapter
from .denoiser import Denoiser, scheduler_kind, scheduler_sigmas, x0_from_output
from .interchange import diffusers_lora, load_lora
from .keys import comfy_to_kohya, ldm_to_diffusers_map, peft_to_kohya
from .session import Candidates, FinetuneSettings, PapaSession, unet_fingerprint

__all__ = [
    "Candidates",
    "Denoiser",
    "FinetuneSettings",
    "PapaSession",
    "PeftAdapter",
    "comfy_to_kohya",
    "diffusers_lora",
    "ldm_to_diffusers_map",
    "load_lora",
    "peft_to_kohya",
    "scheduler_kind",
    "scheduler_sigmas",
    "unet_fingerprint",
    "x0_from_output",
]
