"""Generate a tiny random SD2.x v-prediction checkpoint with ComfyUI's own classes (test fixture).

Writes OUT_DIR/checkpoints/papa_tiny_sd2v.safetensors, which ComfyUI's loader detects as SD20 with
ModelType.V_PREDICTION by its own rule (the std of output_blocks.11.1's first norm1 bias > 0.09):

- UNet: SD2's matched keys (model_channels 320, linear projections, context 1024, no ADM), three
  levels of three res blocks at 320 channels (so output block 11 exists), attention only where
  the v-prediction rule and the LoRA need it.
- Text encoder: SD2's own SD2ClipModel (OpenCLIP ViT-H text tower, penultimate layer), full-size
  random, since ComfyUI builds it from its fixed config (~700 MB in fp16).
- VAE: the random SD VAE of make_tiny_models.py.

Usage: python scripts/make_tiny_sd2.py COMFYUI_DIR OUT_DIR
"""

import os
import sys

import torch

SEED = 20261203
CHECKPOINT = "papa_tiny_sd2v.safetensors"
VPRED_BIAS = "output_blocks.11.1.transformer_blocks.0.norm1.bias"

UNET_CONFIG = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "adm_in_channels": None,
    "in_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [3, 3, 3],
    "transformer_depth": [1, 0, 0, 1, 0, 0, 0, 0, 0],
    "channel_mult": [1, 1, 1],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": True,
    "context_dim": 1024,
    "num_heads": -1,
    "num_head_channels": 64,
    # popped from the end: the first output blocks are the deepest; output block 11 is index 0
    "transformer_depth_output": [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}


def main() -> None:
    comfy_dir, out_dir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, comfy_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    import comfy.model_base
    import comfy.model_detection
    import comfy.ops
    import comfy.supported_models
    import comfy.text_encoders.sd2_clip
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from make_tiny_models import atomic_save, init_weights, vae_state_dict

    gen = torch.Generator().manual_seed(SEED)
    unet = UNetModel(**UNET_CONFIG, operations=comfy.ops.disable_weight_init)
    init_weights(unet, gen)
    unet_sd = {k: v.half() for k, v in unet.state_dict().items()}
    # the loader's own v-prediction rule reads this bias's spread
    unet_sd[VPRED_BIAS] = (torch.randn(unet_sd[VPRED_BIAS].shape, generator=gen) * 0.2).half()

    clip = comfy.text_encoders.sd2_clip.SD2ClipModel(device="cpu", dtype=torch.float16)
    init_weights(clip, gen)
    with torch.no_grad():  # small weights keep attention over random embeddings finite in fp16
        for p in clip.parameters():
            if p.ndim >= 2:
                p.mul_(0.5)

    config = comfy.supported_models.SD20(UNET_CONFIG)
    ckpt = config.process_unet_state_dict_for_saving(unet_sd)
    ckpt.update(config.process_clip_state_dict_for_saving(dict(clip.state_dict())))
    ckpt.update(vae_state_dict(gen))
    ckpt = {
        k: (v if k.endswith("position_ids") or not v.is_floating_point() else v.half())
        for k, v in ckpt.items()
    }
    found = comfy.model_detection.model_config_from_unet(ckpt, "model.diffusion_model.")
    assert type(found) is comfy.supported_models.SD20, f"detected as {type(found).__name__}"
    kind = found.model_type(ckpt, "model.diffusion_model.")
    assert kind == comfy.model_base.ModelType.V_PREDICTION, kind
    atomic_save(
        ckpt,
        os.path.join(out_dir, "checkpoints", CHECKPOINT),
        {"comfy_papa": "tiny random SD2.x v-prediction test checkpoint"},
    )
    print(f"tiny SD2 v-prediction written to {out_dir}")


if __name__ == "__main__":
    main()
