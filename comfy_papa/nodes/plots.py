"""A small loss-curve picture as a ComfyUI IMAGE tensor (PIL only, no plotting library)."""

import numpy as np
import torch
from PIL import Image, ImageDraw


def loss_curve_image(losses: list[float], title: str, size=(384, 192)) -> torch.Tensor:
    """The curve as a ComfyUI IMAGE [1, H, W, 3] in [0, 1]."""
    arr = np.asarray(loss_curve_pil(losses, title, size), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None]


def loss_curve_pil(losses: list[float], title: str, size=(384, 192)) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (24, 24, 28))
    draw = ImageDraw.Draw(img)
    draw.text((8, 6), title, fill=(220, 220, 220))
    vals = [v for v in losses if np.isfinite(v)]
    if len(vals) >= 2:
        lo, hi = min(vals), max(vals)
        span = (hi - lo) or 1.0
        pts = [
            (12 + i * (w - 24) / (len(vals) - 1), h - 14 - (v - lo) / span * (h - 44))
            for i, v in enumerate(vals)
        ]
        draw.line(pts, fill=(90, 200, 255), width=2)
        draw.text((8, h - 14), f"min {lo:.4g}  max {hi:.4g}", fill=(160, 160, 160))
    return img
