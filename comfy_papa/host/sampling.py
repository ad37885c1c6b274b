"""Candidate sampling through the host's own KSampler (every sampler and scheduler works)."""

from __future__ import annotations

import comfy.model_management
import comfy.sample
import comfy.utils
import latent_preview
import torch

from ..feedback import Candidates
from .models import model_fingerprint


def candidate_noise(latent: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """One noise tensor per candidate, each drawn from its own seed (so any one can be remade)."""
    return torch.cat([comfy.sample.prepare_noise(latent[:1], s) for s in seeds], dim=0)


def seed_run(seed: int, count: int) -> list[int]:
    """seed, seed + 1, ..., modulo 2^64 (so a seed at the top of the widget's range works with any
    count)."""
    return [(seed + i) % 2**64 for i in range(count)]


def sample_seeds(
    model,
    positive,
    negative,
    latent: dict,
    seeds: list[int],
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    preview: bool = False,
) -> torch.Tensor:
    """One sample per seed in one batch, each from its own seed's noise (so any one can be
    remade alone), at the size of `latent`'s first item. `preview`: the host's live previews."""
    base = comfy.sample.fix_empty_latent_channels(model, latent["samples"][:1])
    latents_in = base.repeat(len(seeds), *([1] * (base.ndim - 1)))
    samples = comfy.sample.sample(
        model,
        candidate_noise(latents_in, seeds),
        steps,
        cfg,
        sampler_name,
        scheduler,
        positive,
        negative,
        latents_in,
        callback=latent_preview.prepare_callback(model, steps) if preview else None,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
        seed=seeds[0],
    )
    return samples.to(comfy.model_management.intermediate_device())


def sample_candidates(
    model,
    positive,
    negative,
    latent: dict,
    count: int,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    round_tag: str = "",
) -> tuple[dict, Candidates]:
    """Sample `count` candidates in one batch; candidate i uses seed + i (`seed_run`)."""
    seeds = seed_run(seed, count)
    samples = sample_seeds(
        model, positive, negative, latent, seeds, steps, cfg, sampler_name, scheduler, True
    )
    fingerprint = model_fingerprint(model)
    ids = [f"{round_tag}{fingerprint[:6]}-{s}" for s in seeds]
    h, w = samples.shape[-2:]
    settings = {
        "steps": steps,
        "cfg": cfg,
        "sampler": sampler_name,
        "scheduler": scheduler,
        "latent_height": int(h),
        "latent_width": int(w),
    }
    cands = Candidates(
        latents=samples.detach().clone(),
        ids=ids,
        seeds=seeds,
        settings=settings,
        model_fingerprint=fingerprint,
        positive=positive,
    )
    return {"samples": samples}, cands
