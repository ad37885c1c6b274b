"""How comfy-papa drives the ComfyUI host: its models, sampler, server and files."""
