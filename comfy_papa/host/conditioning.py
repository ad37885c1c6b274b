"""ComfyUI CONDITIONING <-> flat tensors, so a round's prompt can be stored with its labels."""

from __future__ import annotations

import torch

# Scalar options, stored as one-element tensors under "num.": SDXL's size conditioning (width,
# height, crop_w, crop_h, target_width, target_height from CLIPTextEncodeSDXL) and Flux's
# guidance. Without them training would see the model's defaults (SDXL: 768 x 768), not what the
# candidates were sampled with.
_SCALARS = {bool: torch.bool, int: torch.int64, float: torch.float64}


def conditioning_to_tensors(cond) -> dict[str, torch.Tensor]:
    """Keep the first entry's cross-attention tensor, every tensor option (pooled_output, ...) and
    every number option (width, height, guidance, ...).

    Candidates of one round share one prompt, so one entry (batch 1) is enough to retrain on.
    """
    if not cond:
        return {}
    tensor, options = cond[0]
    out = {"cross_attn": tensor[:1].detach().cpu().clone()}
    for k, v in options.items():
        if isinstance(v, torch.Tensor):
            out[f"opt.{k}"] = v[:1].detach().cpu().clone()
        elif type(v) in _SCALARS:
            out[f"num.{k}"] = torch.tensor([v], dtype=_SCALARS[type(v)])
    return out


def _scalar(t: torch.Tensor):
    return t.reshape(-1)[0].item()


def tensors_to_conditioning(tensors: dict[str, torch.Tensor]) -> list:
    if "cross_attn" not in tensors:
        return []
    options = {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}
    options.update({k[4:]: _scalar(v) for k, v in tensors.items() if k.startswith("num.")})
    return [[tensors["cross_attn"], options]]
