"""The digits model as a real ComfyUI MODEL, with its pixel-space VAE and empty conditioning.

Needs the host (imports `comfy`). The latent space is ComfyUI's pixel-space VAE's: IMAGE values in
[0, 1] become latents in [-1, 1] (`VAE.process_input`), 3 channels, no downscaling.
"""

from __future__ import annotations

from pathlib import Path

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models_base
import comfy.utils
import torch

from .config import CONTEXT_DIM, SAMPLING_SETTINGS, UNET_CONFIG, UNET_WEIGHTS


class DigitsPixels(comfy.latent_formats.LatentFormat):
    """Pixel space, 3 channels, identity scale: latents are the VAE's [-1, 1] pixels."""

    latent_channels = 3
    scale_factor = 1.0

    def __init__(self) -> None:
        # Previews read a latent as RGB: the identity, then (x + 1) / 2 in ComfyUI's preview.
        self.latent_rgb_factors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


class DigitsModel(comfy.supported_models_base.BASE):
    """An unconditional v-prediction DDPM on 32x32 digits (see config.py)."""

    unet_config = UNET_CONFIG
    unet_extra_config: dict = {}
    sampling_settings = SAMPLING_SETTINGS
    latent_format = DigitsPixels
    memory_usage_factor = 1.0
    supported_inference_dtypes = [torch.float32, torch.float16, torch.bfloat16]

    def model_type(self, state_dict, prefix=""):
        # scripts/train_digits.py trains v (Salimans & Ho 2022); the schedule is SAMPLING_SETTINGS
        return comfy.model_base.ModelType.V_PREDICTION


def build_base_model(dtype: torch.dtype = torch.float32, device=None):
    """A `model_base.BaseModel` (V_PREDICTION, discrete DDPM schedule), weights uninitialised."""
    config = DigitsModel(UNET_CONFIG)
    config.set_inference_dtype(dtype, None)
    return config.get_model({}, device=device)


def load_digits_model(path: Path | str = UNET_WEIGHTS) -> comfy.model_patcher.ModelPatcher:
    """The committed digits weights as a ModelPatcher, like ComfyUI's own loaders return."""
    sd = comfy.utils.load_torch_file(str(path))
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    dtype = comfy.model_management.unet_dtype(
        model_params=comfy.utils.calculate_parameters(sd),
        supported_dtypes=DigitsModel.supported_inference_dtypes,
    )
    model = build_base_model(dtype=dtype, device=offload_device)
    missing, unexpected = model.diffusion_model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match the digits architecture (missing {len(missing)} keys, "
            f"unexpected {len(unexpected)}): re-run scripts/train_digits.py or restore the file."
        )
    return comfy.model_patcher.ModelPatcher(
        model, load_device=load_device, offload_device=offload_device
    )


def pixel_space_vae() -> comfy.sd.VAE:
    """ComfyUI's pixel-space VAE: IMAGE [0, 1] <-> latent [-1, 1]."""
    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


def empty_conditioning() -> list:
    """One all-zero context token: the model was trained on it, so it means "no condition"."""
    return [[torch.zeros(1, 1, CONTEXT_DIM), {}]]


def empty_latent(batch_size: int = 1) -> dict:
    """A zero 32x32 latent of the model's 3 channels (what EmptyLatentImage is for SD)."""
    size = UNET_CONFIG["image_size"]
    return {"samples": torch.zeros(batch_size, UNET_CONFIG["in_channels"], size, size)}
