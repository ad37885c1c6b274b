"""Generate tiny random models with ComfyUI's own classes (test fixtures, never committed).

Writes into OUT_DIR:
- checkpoints/papa_tiny_sd15.safetensors: an SD1.5-architecture checkpoint (one UNet level with
  320 channels and context 768, so ComfyUI detects it as SD1.5; a full-size random CLIP-L; a random
  SD VAE) that runs a 4-step 64x64 KSampler in about a second on CPU.
- vae_approx/taesd_encoder.safetensors, taesd_decoder.safetensors: a random TAESD for previews.

Usage: python scripts/make_tiny_models.py COMFYUI_DIR OUT_DIR
"""

import math
import os
import sys

import torch
from safetensors.torch import save_file

SEED = 20261126


def init_weights(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Deterministic init: ComfyUI's ops skip reset_parameters, leaving torch.empty garbage."""
    for name, p in module.named_parameters():
        with torch.no_grad():
            if p.ndim >= 2:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)
    for name, b in module.named_buffers():
        if name.endswith("position_ids"):
            continue
        if b.is_floating_point():
            b.zero_()


def tiny_unet_state_dict(gen: torch.Generator) -> dict[str, torch.Tensor]:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=320,
        num_res_blocks=[1],
        channel_mult=[1],
        use_spatial_transformer=True,
        transformer_depth=[1],
        transformer_depth_middle=1,
        transformer_depth_output=[1, 1],
        context_dim=768,
        num_heads=8,
        use_linear_in_transformer=False,
        operations=comfy.ops.disable_weight_init,
    )
    init_weights(unet, gen)
    return {f"model.diffusion_model.{k}": v.half() for k, v in unet.state_dict().items()}


def clip_state_dict(gen: torch.Generator) -> dict[str, torch.Tensor]:
    import comfy.sd1_clip

    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    init_weights(clip, gen)
    # Attention over random embeddings needs small weights to stay finite in fp16.
    with torch.no_grad():
        for p in clip.parameters():
            if p.ndim >= 2:
                p.mul_(0.5)
    sd = clip.state_dict()
    return {
        f"cond_stage_model.{k}": (v if k.endswith("position_ids") else v.half())
        for k, v in sd.items()
    }


def vae_state_dict(gen: torch.Generator) -> dict[str, torch.Tensor]:
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ddconfig = {
        "double_z": True,
        "z_channels": 4,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    }
    vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
    init_weights(vae, gen)
    return {f"first_stage_model.{k}": v.half() for k, v in vae.state_dict().items()}


def taesd_state_dicts(gen: torch.Generator) -> tuple[dict, dict]:
    from comfy.taesd.taesd import Decoder, Encoder

    enc, dec = Encoder(4), Decoder(4)
    init_weights(enc, gen)
    init_weights(dec, gen)
    return enc.state_dict(), dec.state_dict()


def atomic_save(tensors: dict, path: str, metadata: dict | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
    os.replace(tmp, path)


def main() -> None:
    comfy_dir, out_dir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, comfy_dir)
    # ComfyUI reads its command line at import; ask for the CPU like `main.py --cpu` would.
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    gen = torch.Generator().manual_seed(SEED)

    ckpt = tiny_unet_state_dict(gen)
    ckpt.update(clip_state_dict(gen))
    ckpt.update(vae_state_dict(gen))
    atomic_save(
        ckpt,
        os.path.join(out_dir, "checkpoints", "papa_tiny_sd15.safetensors"),
        {"comfy_papa": "tiny random SD1.5-architecture test checkpoint"},
    )
    enc, dec = taesd_state_dicts(gen)
    atomic_save(enc, os.path.join(out_dir, "vae_approx", "taesd_encoder.safetensors"))
    atomic_save(dec, os.path.join(out_dir, "vae_approx", "taesd_decoder.safetensors"))
    print(f"tiny models written to {out_dir}")


if __name__ == "__main__":
    main()
