"""The digits demo: a small pixel-space diffusion model, a digit classifier and a simulated user.

`config`, `data`, `classifier` and `rules` are torch-only (no ComfyUI import); `model` builds the
ComfyUI MODEL, VAE and CONDITIONING from the committed weights and needs the host.
"""
