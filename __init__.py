"""comfy-papa: ComfyUI entry point (V3 extension + frontend files)."""

from .comfy_papa.extension import comfy_entrypoint

WEB_DIRECTORY = "./js"

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
