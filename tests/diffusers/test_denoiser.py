"""The diffusers denoiser in the core's conventions: schedule, x0 from eps / v, LDM key map."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from comfy_papa.core.schedule import discrete_sigmas_from_betas
from comfy_papa.diffusers import ldm_to_diffusers_map, scheduler_sigmas, x0_from_output
from comfy_papa.diffusers.keys import KeyMapError


def test_scheduler_sigmas_are_the_core_ddpm_sigmas():
    sched = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    expected = discrete_sigmas_from_betas(sched.betas.double())
    torch.testing.assert_close(scheduler_sigmas(sched), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_x0_matches_the_schedulers_own_pred_original_sample(prediction_type):
    sched = DDPMScheduler(prediction_type=prediction_type, clip_sample=False)
    sched.set_timesteps(1000)
    gen = torch.Generator().manual_seed(0)
    x_vp, out = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    kind = {"epsilon": "eps", "v_prediction": "v"}[prediction_type]
    sigmas = scheduler_sigmas(sched).float()
    for t in (0, 400, 999):
        ref = sched.step(out, t, x_vp, generator=gen).pred_original_sample
        x_ve = x_vp * (1 + sigmas[t] ** 2).sqrt()
        mine = x0_from_output(out, x_ve, sigmas[t].repeat(2), kind)
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-4)


def test_ldm_map_round_trips_through_diffusers_converter_on_an_sd_style_unet():
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=2,
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    m = ldm_to_diffusers_map(unet)
    assert sorted(m.values()) == sorted(unet.state_dict())
    assert m["input_blocks.3.0.op.weight"] == "down_blocks.0.downsamplers.0.conv.weight"
    assert m["output_blocks.2.1.conv.weight"] == "up_blocks.0.upsamplers.0.conv.weight"
    assert m["middle_block.1.proj_in.weight"] == "mid_block.attentions.0.proj_in.weight"


def test_ldm_map_refuses_an_unconditional_unet():
    from diffusers import UNet2DModel

    with pytest.raises(KeyMapError, match="SD-style"):
        ldm_to_diffusers_map(
            UNet2DModel(
                sample_size=8,
                block_out_channels=(8, 8),
                down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D"),
                norm_num_groups=4,
            )
        )
