"""A diffusers UNet + DDPM-family scheduler seen in the core's conventions (sigma space, x0 out).

diffusers UNets take the variance-preserving input x_VP = sqrt(abar) x0 + sqrt(1 - abar) eps at an
integer timestep and predict eps ("epsilon") or v ("v_prediction", v = sqrt(abar) eps -
sqrt(1 - abar) x0). The core works in the VE form x = x0 + sigma eps with
sigma = sqrt((1 - abar) / abar) (`core.schedule.discrete_sigmas_from_betas`), so
x_VP = x_VE sqrt(abar), abar = 1 / (1 + sigma^2), and the denoised prediction is

    eps:  x0 = x_VE - sigma eps_hat
    v:    x0 = sqrt(abar) x_VP - sqrt(1 - abar) v_hat.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.schedule import ModelKind, discrete_sigmas_from_betas

_KINDS = {"epsilon": "eps", "v_prediction": "v"}


def scheduler_kind(scheduler) -> ModelKind:
    """The core's model kind for a diffusers scheduler's prediction_type."""
    pred = scheduler.config.prediction_type
    if pred not in _KINDS:
        raise ValueError(
            f"PAPA supports epsilon and v_prediction schedulers; this one predicts {pred!r}. Use a "
            "DDPMScheduler or DDIMScheduler configured with prediction_type='epsilon' or "
            "'v_prediction'."
        )
    return _KINDS[pred]  # type: ignore[return-value]


def scheduler_sigmas(scheduler) -> Tensor:
    """The training schedule in sigma space, increasing, float64: sqrt((1 - abar) / abar).

    From the betas in float64 (as ComfyUI builds its table), not diffusers' float32 alphas_cumprod,
    whose 1 - abar loses ~1e-4 relative precision at the clean end."""
    return discrete_sigmas_from_betas(scheduler.betas.detach().to("cpu", torch.float64))


def x0_from_output(out: Tensor, x_ve: Tensor, sigma: Tensor, kind: ModelKind) -> Tensor:
    """Denoised x0 from a UNet output at VE input x_ve and noise level sigma (one per row)."""
    s = sigma.reshape(-1, *([1] * (x_ve.ndim - 1))).to(x_ve.dtype)
    if kind == "eps":
        return x_ve - s * out
    if kind == "v":
        abar = 1 / (1 + s * s)
        return abar * x_ve - (1 - abar).sqrt() * out  # sqrt(abar) x_VP = abar x_VE
    raise ValueError(f"unknown model kind {kind!r}; expected 'eps' or 'v'.")


@dataclass
class Denoiser:
    """x0-predicting view of `unet` under `scheduler`'s training schedule."""

    unet: torch.nn.Module
    scheduler: object

    def __post_init__(self) -> None:
        self.kind: ModelKind = scheduler_kind(self.scheduler)
        self.sigmas = scheduler_sigmas(self.scheduler)

    @property
    def conditional(self) -> bool:
        return getattr(self.unet.config, "cross_attention_dim", None) is not None

    def __call__(self, x_ve: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        """x0 prediction for VE inputs x_ve at integer timesteps t (one per row)."""
        sigma = self.sigmas.to(x_ve.device)[t].to(x_ve.dtype)
        x_vp = x_ve / (1 + sigma * sigma).sqrt().reshape(-1, *([1] * (x_ve.ndim - 1)))
        return x0_from_output(self.unet_output(x_vp, t, context), x_ve, sigma, self.kind)

    def unet_output(self, x_vp: Tensor, t: Tensor, context: Tensor | None) -> Tensor:
        if self.conditional:
            if context is None:
                raise ValueError(
                    "this UNet is conditional (cross_attention_dim is set): pass the prompt "
                    "embeddings as context (encoder_hidden_states), shape [1 or batch, tokens, "
                    "dim]."
                )
            if context.shape[0] != x_vp.shape[0]:
                context = context.expand(x_vp.shape[0], *context.shape[1:])
            return self.unet(x_vp, t, encoder_hidden_states=context).sample
        return self.unet(x_vp, t).sample

    @torch.no_grad()
    def sample(
        self,
        noise: Tensor,
        steps: int,
        context: Tensor | None,
        generator: torch.Generator,
        eta: float = 1.0,
        on_step: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Run the scheduler's reverse process from x_T = noise (variance preserving, unit
        variance) and return the clean sample x0. `on_step(t)` runs before each step's UNet call
        (EPAPA switches adapters there); `eta` goes to schedulers that take it (DDIM: 1 is
        DDPM-like)."""
        sched = copy.deepcopy(self.scheduler)
        sched.set_timesteps(steps)
        takes_eta = "eta" in inspect.signature(sched.step).parameters
        x = noise * sched.init_noise_sigma
        for t in sched.timesteps:
            if on_step is not None:
                on_step(int(t))
            tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
            out = self.unet_output(sched.scale_model_input(x, t), tt, context)
            kwargs = {"generator": generator}
            if takes_eta:
                kwargs["eta"] = eta
            x = sched.step(out, t, x, **kwargs).prev_sample
        return x
