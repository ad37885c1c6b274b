"""Optimizer state as flat named tensors, so a profile can keep it in safetensors (no pickle).

Shared by the ComfyUI and diffusers backends and the digits training script.
"""

import math

import torch


def flatten_optimizer(opt: torch.optim.Optimizer, names: list[str]) -> dict[str, torch.Tensor]:
    """Per-parameter state as `name::key` tensors on the CPU. Conv-shaped (>2-D) moments are
    stored as matrices [out, in*k*k], the layout ComfyUI's LoRA files use, so a profile reads the
    same whichever backend wrote it; `restore_optimizer` reshapes them back."""
    out = {}
    for i, name in enumerate(names):
        for k, v in opt.state_dict()["state"].get(i, {}).items():
            v = torch.as_tensor(v).detach().cpu()
            out[f"{name}::{k}"] = (v.flatten(1) if v.ndim > 2 else v).clone()
    return out


def restore_optimizer(opt: torch.optim.Optimizer, names: list[str], flat: dict) -> None:
    """Load state written by `flatten_optimizer` into `opt`, whose parameters are in `names`'
    order; nothing to do for an empty dict (a first round)."""
    if not flat:
        return
    sd = opt.state_dict()
    shapes = [p.shape for group in opt.param_groups for p in group["params"]]
    state = {}
    for i, name in enumerate(names):
        entry = {
            k.split("::", 1)[1]: v.clone() for k, v in flat.items() if k.split("::", 1)[0] == name
        }
        for k, v in entry.items():
            if v.ndim >= 2 and v.shape != shapes[i] and v.numel() == shapes[i].numel():
                entry[k] = v.reshape(shapes[i])
        if entry:
            state[i] = entry
    sd["state"] = state
    opt.load_state_dict(sd)


def grads_finite(params) -> bool:
    """True when no parameter's gradient holds a NaN or an infinity; one GPU sync in all
    (a NaN or inf in any gradient makes its max, and so the sum of maxima, non-finite)."""
    peaks = [p.grad.detach().abs().amax().double() for p in params if p.grad is not None]
    return not peaks or bool(torch.isfinite(torch.stack(peaks).sum()))


def guarded_step(opt: torch.optim.Optimizer, loss: torch.Tensor, loss_value: float, params) -> bool:
    """One optimizer step on `loss`, skipped (False) when the loss or any gradient of `params` is
    not finite, so one bad batch cannot write NaNs into the adapter or its moments."""
    opt.zero_grad(set_to_none=True)
    if not math.isfinite(loss_value):
        return False
    loss.backward()
    if not grads_finite(params):
        return False
    opt.step()
    return True
