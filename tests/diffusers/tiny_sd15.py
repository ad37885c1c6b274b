"""The tiny SD1.5 test checkpoint's UNet as diffusers sees it."""

# The original (LDM) config of scripts/make_tiny_models.py's UNet, in the layout diffusers'
# single-file loader reads; diffusers derives its own UNet config from it.
TINY_SD15_ORIGINAL_CONFIG = {
    "model": {
        "params": {
            "unet_config": {
                "params": {
                    "image_size": 32,
                    "in_channels": 4,
                    "out_channels": 4,
                    "model_channels": 320,
                    "attention_resolutions": [1],
                    "num_res_blocks": 1,
                    "channel_mult": [1],
                    "num_heads": 8,
                    "use_spatial_transformer": True,
                    "transformer_depth": 1,
                    "context_dim": 768,
                    "use_linear_in_transformer": False,
                }
            },
            "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}},
        }
    }
}
SD15_SCALE = 0.18215  # SD1.5's VAE latent scale (ComfyUI's process_latent_in)
