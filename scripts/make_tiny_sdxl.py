"""Generate a tiny random SDXL checkpoint with ComfyUI's own classes (test fixture, not committed).

Writes OUT_DIR/checkpoints/papa_tiny_sdxl.safetensors, which ComfyUI's loader detects as SDXL
itself (comfy.supported_models.SDXL, not one of the distilled subclasses):

- UNet: the SDXL layout the detector matches (model_channels 320, two res blocks on each of three
  levels with transformer depths [0, 0, 2, 2, 10, 10], linear projections, context 2048, ADM
  input 2816 = pooled CLIP-G 1280 + six size/crop embeddings of 256) but every level keeps 320
  channels and the decoder has a single transformer block per deep block, so it stays ~140M
  parameters and a 32x32 image (4x4 latent) samples in a fraction of a second per step on CPU.
- Text encoders: SDXL's own SDXLClipModel (CLIP-L + CLIP-G with its projected pooled output).
  ComfyUI builds CLIP-G from its fixed bigG config whatever the checkpoint holds, so CLIP-G is
  full-size (random); that makes the file ~1.9 GB, which is why it has its own cache folder.
- VAE: the random SD VAE of make_tiny_models.py (SDXL uses the same architecture).

Saved through ComfyUI's own SDXL key conversion (process_*_state_dict_for_saving), the way its
CheckpointSave node writes a checkpoint.

Usage: python scripts/make_tiny_sdxl.py COMFYUI_DIR OUT_DIR
"""

import os
import sys

import torch

SEED = 20261202
CHECKPOINT = "papa_tiny_sdxl.safetensors"

UNET_CONFIG = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
    "in_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "channel_mult": [1, 1, 1],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": True,
    "context_dim": 2048,
    "num_head_channels": 64,
    "transformer_depth_output": [0, 0, 0, 0, 0, 0, 1, 1, 1],
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}


def unet_state_dict(gen: torch.Generator, init_weights) -> dict[str, torch.Tensor]:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**UNET_CONFIG, operations=comfy.ops.disable_weight_init)
    init_weights(unet, gen)
    return {k: v.half() for k, v in unet.state_dict().items()}


def clip_state_dict(gen: torch.Generator, init_weights) -> dict[str, torch.Tensor]:
    import comfy.sdxl_clip

    # fp16 from the start: CLIP-G is full size, an fp32 copy would need ~2.8 GB.
    clip = comfy.sdxl_clip.SDXLClipModel(device="cpu", dtype=torch.float16)
    init_weights(clip, gen)
    # Attention over random embeddings needs small weights to stay finite in fp16.
    with torch.no_grad():
        for p in clip.parameters():
            if p.ndim >= 2:
                p.mul_(0.5)
    return dict(clip.state_dict())


def main() -> None:
    comfy_dir, out_dir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, comfy_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    import comfy.supported_models
    from make_tiny_models import atomic_save, init_weights, vae_state_dict

    gen = torch.Generator().manual_seed(SEED)
    config = comfy.supported_models.SDXL(UNET_CONFIG)
    ckpt = config.process_unet_state_dict_for_saving(unet_state_dict(gen, init_weights))
    ckpt.update(config.process_clip_state_dict_for_saving(clip_state_dict(gen, init_weights)))
    vae = vae_state_dict(gen)  # already prefixed first_stage_model., SDXL's VAE prefix too
    ckpt.update(vae)
    ckpt = {
        k: (v if k.endswith("position_ids") or not v.is_floating_point() else v.half())
        for k, v in ckpt.items()
    }
    atomic_save(
        ckpt,
        os.path.join(out_dir, "checkpoints", CHECKPOINT),
        {"comfy_papa": "tiny random SDXL-architecture test checkpoint"},
    )
    import comfy.model_detection

    found = comfy.model_detection.model_config_from_unet(ckpt, "model.diffusion_model.")
    assert type(found) is comfy.supported_models.SDXL, f"detected as {type(found).__name__}"
    print(f"tiny SDXL written to {out_dir}")


if __name__ == "__main__":
    main()
