"""The digits benchmark's diffusers backend: comfy_papa.diffusers.PapaSession, no ComfyUI import.

The model is the demo model's diffusers twin (scripts/train_digits_diffusers.py: same data, loss and
DDPM schedule; a UNet2DModel on gray 32x32), from `settings["diffusers_model"]`, else the
environment variable PAPA_DIGITS_DIFFUSERS_MODEL, else comfy_papa/assets/digits_diffusers.

Sampling mirrors the ComfyUI backend's sampler and scheduler names with a DDIMScheduler on the
model's training betas: DDIM with eta = 0 is Euler's method on the probability-flow ODE in
(x / sqrt(abar), sigma), the step ComfyUI's "euler" takes, and eta = 1 the ancestral (DDPM-like)
variant; timestep spacing "linspace" gives ComfyUI's "normal" timesteps (t = 999 .. 0, then sigma
0) rounded to integers, "trailing" its "sgm_uniform". A batch of n samples draws its noise from
one CPU generator seeded by `seed` (ComfyUI seeds candidate i with seed + i): the draws, not the
distribution, differ from the ComfyUI backend.

PAPA, EPAPA and the baselines train the profile `digits-<method>-<seed>` under
`<workdir>/profiles`; EPAPA samples with the adapter above the cut only (PapaSession does so for an
EPAPA profile). D3PO and Diffusion-KTO train through `PapaSession.finetune(round_cls=...)` with
the round classes of bench/digits_baselines.py, the ones the ComfyUI backend runs.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import torch

from .digits_baselines import ROUNDS, configured, has_pairs

ETA = {"euler": 0.0, "ddim": 0.0, "euler_ancestral": 1.0, "ddpm": 1.0}
SPACING = {"normal": "linspace", "sgm_uniform": "trailing", "ddim_uniform": "leading"}
# The FinetuneSettings method of each benchmark method (the baselines' adapters are baked in,
# as PAPA's: `method` only decides the sampling gate).
METHODS = {"bestofn": None, "papa": "PAPA", "epapa": "EPAPA", "d3po": "PAPA", "kto": "PAPA"}


def model_dir(settings: dict) -> Path:
    from comfy_papa.digits.config import DIFFUSERS_MODEL

    path = Path(
        settings.get("diffusers_model")
        or os.environ.get("PAPA_DIGITS_DIFFUSERS_MODEL")
        or DIFFUSERS_MODEL
    )
    if not (path / "unet").is_dir() or not (path / "scheduler").is_dir():
        raise FileNotFoundError(
            f"no diffusers digits model in {path} (needs unet/ and scheduler/): train one with "
            "scripts/train_digits_diffusers.py --out DIR, then pass settings['diffusers_model'] = "
            "DIR or set PAPA_DIGITS_DIFFUSERS_MODEL=DIR."
        )
    return path


def sampling_scheduler(path: Path, sampler: str, scheduler: str):
    """(DDIMScheduler on the model's training schedule, eta) for ComfyUI sampler/scheduler names."""
    from diffusers import DDIMScheduler

    if sampler not in ETA or scheduler not in SPACING:
        raise ValueError(
            f"the diffusers backend samples with {sorted(ETA)} and schedulers {sorted(SPACING)}; "
            f"got sampler {sampler!r}, scheduler {scheduler!r}."
        )
    config = DDIMScheduler.load_config(path, subfolder="scheduler")
    sched = DDIMScheduler.from_config(
        config,
        timestep_spacing=SPACING[scheduler],
        set_alpha_to_one=True,  # the last step lands on sigma = 0, like ComfyUI's schedules
        steps_offset=0,
        clip_sample=False,
    )
    return sched, ETA[sampler]


class DiffusersDigits:
    """One (method, seed) run of the benchmark on a diffusers UNet (see DigitsBackend in
    bench/digits.py). `settings`: steps, sampler, scheduler (sampling), finetune (the method's
    FinetuneSettings fields; rank and alpha size the adapter), optionally diffusers_model."""

    def __init__(self, method: str, seed: int, workdir: Path, device: str, settings: dict):
        from diffusers import UNet2DModel

        from comfy_papa.core.round import RoundLoop
        from comfy_papa.diffusers import FinetuneSettings, PapaSession

        if method not in METHODS:
            raise ValueError(f"the diffusers backend runs {', '.join(METHODS)}; not {method!r}.")
        self.method = method
        self.seed = seed
        self.steps = int(settings.get("steps", 20))
        path = model_dir(settings)
        sched, self.eta = sampling_scheduler(
            path, settings.get("sampler", "euler"), settings.get("scheduler", "normal")
        )
        unet = UNet2DModel.from_pretrained(path, subfolder="unet", torch_dtype=torch.float32)
        unet = unet.to(torch.device(device)).eval()
        ft = dict(settings.get("finetune", {}))
        self.round_cls = RoundLoop
        if method in ROUNDS:
            params = {k: ft.pop(k) for k in ROUNDS[method].PARAMS if k in ft}
            if params.get("sampling_steps", 0) is None:
                params["sampling_steps"] = self.steps  # D3PO: the candidates' sampler steps
            self.round_cls = configured(ROUNDS[method], **params)
        known = {f.name for f in fields(FinetuneSettings)}
        unknown = sorted(set(ft) - known)
        if unknown:
            raise ValueError(f"fine-tune settings {unknown} are not FinetuneSettings fields.")
        rank = int(ft.pop("rank", 8))
        alpha = float(ft.pop("alpha", rank))
        self.finetune_kw = dict(ft, seed=seed, method=METHODS[method] or "PAPA")
        name = f"digits-{method}-{seed}"
        root = Path(workdir) / "profiles"
        self.session = PapaSession.open(root, name, unet, sched, rank=rank, alpha=alpha)
        self._last: list[str] | None = None
        self._labelled = False
        self._held: list[tuple[int, int]] = []  # (label, round) of every labelled candidate

    def _sample(self, n: int, seed: int):
        cand = self.session.sample(n, seed=seed, steps=self.steps, eta=self.eta)
        gray = ((cand.latents.float() + 1) / 2).clamp(0, 1).mean(dim=1)
        return gray, cand.ids

    def candidates(self, n: int, seed: int) -> torch.Tensor:
        if self._last:
            self.session.forget(self._last)
        gray, self._last = self._sample(n, seed)
        return gray

    def evaluate(self, n: int, seed: int) -> torch.Tensor:
        gray, ids = self._sample(n, seed)
        self.session.forget(ids)
        return gray

    def feedback(self, labels: list[int]) -> dict:
        if self._last is None:
            raise RuntimeError("feedback() before candidates()")
        ids, self._last = self._last, None
        if self.method == "bestofn":
            self.session.forget(ids)
            return {"seconds": 0.0, "passes": 0}
        round_ = self.session.profile.round + 1  # what give_labels records
        self.session.give_labels(ids, [float(v) for v in labels])
        self._labelled = self._labelled or any(labels)
        self._held += [(int(v), round_) for v in labels]
        if not self._labelled:
            return {"seconds": 0.0, "passes": 0, "skipped": "no like or dislike yet"}
        held_labels, held_rounds = [v for v, _ in self._held], [r for _, r in self._held]
        if self.method == "d3po" and not has_pairs(held_labels, held_rounds):
            return {"seconds": 0.0, "passes": 0, "skipped": "no like/dislike pair yet"}
        stats = self.session.finetune(self.round_cls, **self.finetune_kw)
        out = {"seconds": float(stats["seconds"]), "passes": int(stats["passes"])}
        if stats.get("drift") is not None:
            out["drift"] = float(stats["drift"])
        return out
