"""Fixtures for the diffusers backend: the tiny SD1.5 checkpoint as a diffusers UNet, one thread."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_sd15 import TINY_SD15_ORIGINAL_CONFIG

from harness.tiny_models import CHECKPOINT


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small models on a shared 2-core machine run ~50x faster on one thread than contending."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_sd15_unet_factory(tiny_models):
    """A function returning a fresh float32 diffusers UNet2DConditionModel with the tiny SD1.5
    checkpoint's UNet weights, converted by diffusers' own single-file utilities."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        create_unet_diffusers_config_from_ldm,
    )

    ckpt = load_file(str(tiny_models / "checkpoints" / CHECKPOINT))
    ckpt = {k: v for k, v in ckpt.items() if k.startswith("model.diffusion_model.")}
    config = create_unet_diffusers_config_from_ldm(TINY_SD15_ORIGINAL_CONFIG, ckpt)
    weights = {k: v.float() for k, v in convert_ldm_unet_checkpoint(ckpt, config).items()}

    def make():
        unet = UNet2DConditionModel(**config)
        unet.load_state_dict(weights, strict=True)
        return unet.eval()

    return make


@pytest.fixture(scope="session")
def sd15_scheduler():
    """SD1.5's training schedule (ComfyUI: scaled linear betas 0.00085..0.012, T = 1000)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


@pytest.fixture(scope="session")
def tiny_digits_dir():
    """A tiny diffusers digits model (scripts/make_tiny_diffusers.py), trained once and cached
    under .host/test-models/ keyed by the script's hash."""
    import hashlib
    import subprocess

    from harness.paths import MODEL_CACHE, REPO, VENV_PYTHON

    script = REPO / "scripts" / "make_tiny_diffusers.py"
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:16]
    out = MODEL_CACHE / f"diffusers-digits-{digest}"
    if not (out / ".done").exists():
        subprocess.run([str(VENV_PYTHON), str(script), str(out)], check=True)
        (out / ".done").write_text("ok\n")
    return out
