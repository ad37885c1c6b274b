"""Host-agnostic PAPA algorithm core (torch only): schedules, objective, replay, baselines."""

from .baselines import (
    d3po_loss,
    diffusion_dpo_loss,
    diffusion_kto_loss,
    gaussian_step_logprob,
    pair_likes_dislikes,
)
from .objective import (
    PapaConfig,
    bounded_dislike,
    denoise_error,
    mc_timestep_batch,
    noise_x,
    papa_loss,
)
from .replay import ReplayBuffer
from .schedule import (
    MODEL_KINDS,
    ModelKind,
    cut_index,
    ddpm_reference_weights,
    discrete_sigmas_from_betas,
    elbo_weights,
    gaussian_denoise_error,
    sample_timesteps,
    sigma_cut,
    snr,
    timestep_proposal,
)

__all__ = [
    "MODEL_KINDS",
    "ModelKind",
    "PapaConfig",
    "ReplayBuffer",
    "bounded_dislike",
    "cut_index",
    "d3po_loss",
    "ddpm_reference_weights",
    "denoise_error",
    "diffusion_dpo_loss",
    "diffusion_kto_loss",
    "discrete_sigmas_from_betas",
    "elbo_weights",
    "gaussian_denoise_error",
    "gaussian_step_logprob",
    "mc_timestep_batch",
    "noise_x",
    "pair_likes_dislikes",
    "papa_loss",
    "sample_timesteps",
    "sigma_cut",
    "snr",
    "timestep_proposal",
]
