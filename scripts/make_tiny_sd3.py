"""Generate a tiny random SD3 checkpoint with ComfyUI's own classes (test fixture, not committed).

Writes OUT_DIR/checkpoints/papa_tiny_sd3.safetensors, which ComfyUI's loader detects as SD3 itself
(comfy.supported_models.SD3: an MMDiT, rectified-flow CONST sampling with shift 3):

- MMDiT: the layout the detector reads from the shapes (16 latent channels, patch 2, pooled
  CLIP-L + CLIP-G input of 2048, a 4096 -> hidden context embedder, a learned position table) but
  depth 2, so hidden size 128 (ComfyUI fixes hidden = 64 * depth) and 2 heads: ~2M parameters; a
  32x32 image (4x4 latent, 2x2 patches) samples in milliseconds per step on CPU.
- Text encoders: SD3's own SD3ClipModel with CLIP-L and CLIP-G and no T5-XXL (ComfyUI makes T5
  optional, detected from the state dict; without it the context is CLIP-L | CLIP-G zero-padded
  to 4096). ComfyUI builds CLIP-G from its fixed bigG config, so it is full-size (random), as in
  the tiny SDXL checkpoint; the file is ~1.8 GB and has its own cache folder.
- VAE: SD3's 16-channel VAE (an AutoencodingEngine without quant convs, as ComfyUI builds it
  when decoder.conv_in has 16 input channels and there is no post_quant_conv). ComfyUI builds it
  from a fixed config, so it is full-size (random, ~84M parameters).

Saved through ComfyUI's own SD3 key conversion (process_*_state_dict_for_saving), the way its
CheckpointSave node writes a checkpoint.

Usage: python scripts/make_tiny_sd3.py COMFYUI_DIR OUT_DIR
"""

import os
import sys

import torch

SEED = 20261203
CHECKPOINT = "papa_tiny_sd3.safetensors"
DEPTH = 2  # hidden size 64 * DEPTH, DEPTH heads
POS_EMBED_MAX = 16  # latents up to 128x128 pixels (16x16 patches)

UNET_CONFIG = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": DEPTH,
    "input_size": None,
    "adm_in_channels": 2048,
    "context_embedder_config": {
        "target": "torch.nn.Linear",
        "params": {"in_features": 4096, "out_features": 64 * DEPTH},
    },
    "num_patches": POS_EMBED_MAX**2,
    "pos_embed_max_size": POS_EMBED_MAX,
    "pos_embed_scaling_factor": None,
    "x_block_self_attn_layers": [],
}

# ComfyUI's SD3 VAE config (comfy.sd.VAE, the default SD branch, z_channels from the weights).
VAE_DDCONFIG = {
    "double_z": True,
    "z_channels": 16,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def mmdit_state_dict(gen: torch.Generator, init_weights) -> dict[str, torch.Tensor]:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper

    mmdit = OpenAISignatureMMDITWrapper(**UNET_CONFIG, operations=comfy.ops.disable_weight_init)
    init_weights(mmdit, gen)
    return {k: v.half() for k, v in mmdit.state_dict().items()}


def clip_state_dict(gen: torch.Generator, init_weights) -> dict[str, torch.Tensor]:
    import comfy.text_encoders.sd3_clip

    # fp16 from the start: CLIP-G is full size, an fp32 copy would need ~2.8 GB.
    clip = comfy.text_encoders.sd3_clip.SD3ClipModel(
        clip_l=True, clip_g=True, t5=False, device="cpu", dtype=torch.float16
    )
    init_weights(clip, gen)
    # Attention over random embeddings needs small weights to stay finite in fp16.
    with torch.no_grad():
        for p in clip.parameters():
            if p.ndim >= 2:
                p.mul_(0.5)
    return dict(clip.state_dict())


def vae_state_dict(gen: torch.Generator, init_weights) -> dict[str, torch.Tensor]:
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    module = "comfy.ldm.modules.diffusionmodules.model"
    vae = AutoencodingEngine(
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": f"{module}.Encoder", "params": VAE_DDCONFIG},
        decoder_config={"target": f"{module}.Decoder", "params": VAE_DDCONFIG},
    )
    init_weights(vae, gen)
    return {k: v.half() for k, v in vae.state_dict().items()}


def main() -> None:
    comfy_dir, out_dir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, comfy_dir)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    import comfy.supported_models
    from make_tiny_models import atomic_save, init_weights

    gen = torch.Generator().manual_seed(SEED)
    config = comfy.supported_models.SD3(UNET_CONFIG)
    ckpt = config.process_unet_state_dict_for_saving(mmdit_state_dict(gen, init_weights))
    ckpt.update(config.process_clip_state_dict_for_saving(clip_state_dict(gen, init_weights)))
    ckpt.update(config.process_vae_state_dict_for_saving(vae_state_dict(gen, init_weights)))
    ckpt = {
        k: (v if k.endswith("position_ids") or not v.is_floating_point() else v.half())
        for k, v in ckpt.items()
    }
    atomic_save(
        ckpt,
        os.path.join(out_dir, "checkpoints", CHECKPOINT),
        {"comfy_papa": "tiny random SD3-architecture test checkpoint"},
    )
    import comfy.model_detection

    found = comfy.model_detection.model_config_from_unet(ckpt, "model.diffusion_model.")
    assert type(found) is comfy.supported_models.SD3, f"detected as {type(found).__name__}"
    detected = {k: found.unet_config.get(k) for k in UNET_CONFIG}
    assert detected == UNET_CONFIG, f"detected {detected}"
    print(f"tiny SD3 written to {out_dir}")


if __name__ == "__main__":
    main()
