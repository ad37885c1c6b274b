"""ComfyUI CONDITIONING <-> flat tensors, so a round's prompt can be stored with its labels."""

from __future__ import annotations

import torch


def conditioning_to_tensors(cond) -> dict[str, torch.Tensor]:
    """Keep the first entry's cross-attention tensor and every tensor option (pooled_output, ...).

    Candidates of one round share one prompt, so one entry (batch 1) is enough to retrain on.
    """
    if not cond:
        return {}
    tensor, options = cond[0]
    out = {"cross_attn": tensor[:1].detach().cpu().clone()}
    for k, v in options.items():
        if isinstance(v, torch.Tensor):
            out[f"opt.{k}"] = v[:1].detach().cpu().clone()
    return out


def tensors_to_conditioning(tensors: dict[str, torch.Tensor]) -> list:
    if "cross_attn" not in tensors:
        return []
    options = {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}
    return [[tensors["cross_attn"], options]]
