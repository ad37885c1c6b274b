"""CONDITIONING <-> tensors (comfy_papa.host.conditioning): what a round stores to retrain on."""

import torch

from comfy_papa.host.conditioning import conditioning_to_tensors, tensors_to_conditioning


def test_sdxl_size_options_and_flux_guidance_survive_the_round_trip():
    """CLIPTextEncodeSDXL's sizes and FluxGuidance's guidance are plain numbers: training must see
    them as sampling did (SDXL's model otherwise assumes 768 x 768)."""
    cross, pooled = torch.randn(2, 77, 2048), torch.randn(2, 1280)
    sizes = dict(width=1024, height=1216, crop_w=0, crop_h=32, target_width=1024)
    options = {"pooled_output": pooled, **sizes, "target_height": 1216, "guidance": 3.5}
    options["skip_me"] = "a string is not a conditioning value"
    stored = conditioning_to_tensors([[cross, options]])
    [[c, opts]] = tensors_to_conditioning(stored)
    torch.testing.assert_close(c, cross[:1])
    torch.testing.assert_close(opts.pop("pooled_output"), pooled[:1])
    assert opts == {**sizes, "target_height": 1216, "guidance": 3.5}
    assert type(opts["width"]) is int and type(opts["guidance"]) is float


def test_old_stored_conditionings_without_numbers_still_load():
    stored = {"cross_attn": torch.zeros(1, 77, 768), "opt.pooled_output": torch.zeros(1, 768)}
    [[c, opts]] = tensors_to_conditioning(stored)
    assert c.shape == (1, 77, 768) and list(opts) == ["pooled_output"]


def test_booleans_stay_booleans():
    [[_, opts]] = tensors_to_conditioning(
        conditioning_to_tensors([[torch.zeros(1, 2, 3), {"x": True}]])
    )
    assert opts == {"x": True} and type(opts["x"]) is bool
