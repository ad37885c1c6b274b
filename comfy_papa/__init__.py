"""comfy-papa: personalise an image model from likes and dislikes (PAPA / EPAPA).

`comfy_papa.core` is host-agnostic (torch only); `comfy_papa.host` drives ComfyUI's models,
sampler and server; `comfy_papa.nodes` declares the nodes. Importing this package imports nothing
from ComfyUI.
"""

__version__ = "0.1.0"
