"""The digits model's architecture and noise schedule, shared by training, loading and the bench.

Torch-free, so the training script, the loader and the safetensors metadata read the same values.
"""

from __future__ import annotations

import json
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
UNET_WEIGHTS = ASSETS / "digits_unet.safetensors"
CLASSIFIER_WEIGHTS = ASSETS / "digits_classifier.safetensors"

IMAGE_SIZE = 32  # MNIST's 28x28 padded by 2 pixels on each side
CHANNELS = 3  # gray repeated, so ComfyUI's 3-channel pixel-space VAE maps IMAGE <-> latent
CONTEXT_DIM = 32  # the (constant, all-zero) conditioning token; see model.empty_conditioning

# ComfyUI's openaimodel.UNetModel: 64 channels at every level (32x32, 16x16, 8x8), one res block
# per level, a transformer (self-attention, plus cross-attention to the single zero token) only at
# 8x8 (level 3 and the middle). 64, not 32, channels at full resolution because ComfyUI's UNet uses
# GroupNorm(32) and its last layer normalises the top level's channels: with 32 channels each is
# its own group and loses its per-image mean, so the model could not remove the mean of the
# initial noise (at sigma_max = 157 that left whole images white or gray).
UNET_CONFIG: dict = {
    "image_size": IMAGE_SIZE,
    "in_channels": CHANNELS,
    "out_channels": CHANNELS,
    "model_channels": 64,
    "num_res_blocks": [1, 1, 1],
    "channel_mult": [1, 1, 1],
    "transformer_depth": [0, 0, 1],
    "transformer_depth_middle": 1,
    "transformer_depth_output": [0, 0, 0, 0, 1, 1],
    "use_spatial_transformer": True,
    "context_dim": CONTEXT_DIM,
    "use_linear_in_transformer": True,
    "num_head_channels": 32,
    "num_heads": -1,
    "legacy": False,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}

# DDPM (Ho et al. 2020): T = 1000 betas linear in beta from 1e-4 to 0.02. ComfyUI's
# make_beta_schedule calls this "sqrt_linear" (its "linear" is SD's schedule, linear in sqrt(beta)).
SAMPLING_SETTINGS: dict = {
    "beta_schedule": "sqrt_linear",
    "linear_start": 1e-4,
    "linear_end": 0.02,
    "timesteps": 1000,
}


def config_json() -> str:
    """The architecture and schedule as one JSON string, for the weights' metadata."""
    return json.dumps({"unet": UNET_CONFIG, "sampling": SAMPLING_SETTINGS}, sort_keys=True)


# The diffusers twin of the demo model (scripts/train_digits_diffusers.py, same data and loss):
# a UNet2DModel on 1-channel gray in [-1, 1] (the classifier reads gray; no VAE to feed), saved with
# save_pretrained as DIFFUSERS_MODEL/unet and DIFFUSERS_MODEL/scheduler. 16/32/64 channels, one
# res block per level on the way down (diffusers adds one on the way up), self-attention at 8x8
# and in the middle: 0.69 M parameters (2.8 MB) and 0.19 GFLOP per forward pass, 2.6x fewer than
# 32/64/64, for more images seen in a 25-minute CPU run. GroupNorm(8): two channels per group, as
# in UNET_CONFIG (see its note).
DIFFUSERS_MODEL = ASSETS / "digits_diffusers"
DIFFUSERS_UNET_CONFIG: dict = {
    "sample_size": IMAGE_SIZE,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": [16, 32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "attention_head_dim": 32,
    "norm_num_groups": 8,
}
# SAMPLING_SETTINGS in diffusers' words ("linear" there is linear in beta), no x0 clipping (the
# ComfyUI samplers do none either).
DIFFUSERS_SCHEDULER_CONFIG: dict = {
    "num_train_timesteps": SAMPLING_SETTINGS["timesteps"],
    "beta_schedule": "linear",
    "beta_start": SAMPLING_SETTINGS["linear_start"],
    "beta_end": SAMPLING_SETTINGS["linear_end"],
    "prediction_type": "epsilon",
    "clip_sample": False,
}
