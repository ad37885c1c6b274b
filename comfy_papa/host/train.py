"""One PAPA / EPAPA training round on a ComfyUI MODEL, run through the host's own sampling stack.

The round runs inside a `comfy.samplers.Sampler` given to a guider (as core's TrainLoraNode does):
the guider loads the model with only the residency the batch needs, converts the conditioning
for the model family, and our sampler runs the optimisation loop instead of denoising.
"""

from __future__ import annotations

import comfy.model_management
import comfy.model_sampling
import comfy.samplers
import comfy.utils
import torch
from torch.utils.checkpoint import checkpoint

from ..core.replay import GROUP_KEY, ReplayBuffer
from ..core.round import RoundLoop
from ..core.settings import FinetuneSettings
from .adapters import AdapterSet


def model_kind(model_sampling) -> str:
    """The core's name of a ComfyUI model family: flow (CONST), v, or eps."""
    if isinstance(model_sampling, comfy.model_sampling.CONST):
        return "flow"
    if isinstance(model_sampling, comfy.model_sampling.V_PREDICTION):
        return "v"
    if isinstance(model_sampling, comfy.model_sampling.EPS):
        return "eps"
    raise ValueError(
        f"PAPA cannot train a model with sampling type {type(model_sampling).__name__}; supported "
        "are epsilon, v-prediction and flow (CONST) models."
    )


def schedule_sigmas(model_sampling) -> torch.Tensor:
    """The model's discrete sigma table, increasing, float64 on the CPU."""
    return model_sampling.sigmas.detach().to("cpu", torch.float64)


class TrainingRound(RoundLoop):
    """The round's optimisation (`core.round.RoundLoop`) inside ComfyUI: `run` is called from
    inside the guider's sampling and supplies the host's denoiser."""

    def __init__(
        self,
        adapters: AdapterSet,
        replay: ReplayBuffer,
        group_conds: list,
        settings: FinetuneSettings,
        optimizer_state: dict[str, torch.Tensor],
        round_seed: int,
        progress=None,
        ref_is_base: bool = True,
    ) -> None:
        super().__init__(
            adapters.parameters(), replay, settings, optimizer_state, round_seed, ref_is_base
        )
        self.adapters = adapters
        self.group_conds = group_conds
        self.progress = progress

    def _predict(self, model_wrap, extra_args, x, sigma, groups) -> torch.Tensor:
        """Denoised x0 for each pair, running the model once per conditioning group."""
        all_conds = self._processed
        outs, order = [], []
        for g in groups.unique().tolist():
            sel = (groups == g).nonzero().squeeze(1)
            model_wrap.conds["positive"] = [all_conds[g]]

            def run(xs, ss):
                return model_wrap(xs, ss, **extra_args)

            if self.settings.gradient_checkpointing and torch.is_grad_enabled():
                # Checkpoint along the batch: one candidate's pairs per segment, so the backward
                # pass holds the activations (and patched weight copies) of one segment at a
                # time instead of the whole batch's.
                chunks = sel.split(self.settings.pairs_per_sample)
                parts = [checkpoint(run, x[c], sigma[c], use_reentrant=False) for c in chunks]
                outs.append(torch.cat(parts))
            else:
                outs.append(run(x[sel], sigma[sel]))
            order.append(sel)
        out = torch.cat(outs)
        inverse = torch.empty_like(torch.cat(order))
        inverse[torch.cat(order)] = torch.arange(len(inverse), device=inverse.device)
        return out[inverse]

    def run(self, model_wrap, extra_args) -> None:
        inner = model_wrap.inner_model
        self._processed = list(model_wrap.conds["positive"])
        ms = inner.model_sampling
        device = comfy.model_management.get_torch_device()
        dtype = torch.float32
        x0_all = inner.process_latent_in(self.replay.latents.to(device, dtype))

        def predict(b: dict, adapter_on: bool) -> torch.Tensor:
            sigma = b["sigma"].to(dtype)
            x_noisy = ms.noise_scaling(sigma, b["noise"].to(dtype), b["x0"])
            self.adapters.gate.on = adapter_on
            try:
                return self._predict(model_wrap, extra_args, x_noisy, sigma, b["cond"][GROUP_KEY])
            finally:
                self.adapters.gate.on = True

        pbar = comfy.utils.ProgressBar(self.settings.steps)

        def on_step(step: int, steps: int, stats: dict) -> None:
            preview = None
            if self.progress:
                preview = self.progress(step, steps, stats, self.losses)
            pbar.update_absolute(step, steps, preview)  # raises if the run was interrupted

        self.train(
            predict,
            x0_all,
            self.replay.labels.to(device, dtype),
            self.replay.groups.to(device),
            schedule_sigmas(ms),
            model_kind(ms),
            device,
            on_step,
        )


def host_round(cls: type[RoundLoop]) -> type[TrainingRound]:
    """`cls` run inside ComfyUI: a backend-neutral round with its own `make_batch` /
    `compute_loss` (a benchmark's baseline) on top of `TrainingRound`'s host plumbing."""
    if issubclass(cls, TrainingRound):
        return cls
    return type(cls.__name__, (cls, TrainingRound), {})


class _TrainSampler(comfy.samplers.Sampler):
    def __init__(self, job: TrainingRound) -> None:
        self.job = job

    def sample(
        self,
        model_wrap,
        sigmas,
        extra_args,
        callback,
        noise,
        latent_image=None,
        denoise_mask=None,
        disable_pbar=False,
    ):
        with torch.inference_mode(False), torch.enable_grad():
            self.job.run(model_wrap, extra_args)
        return torch.zeros_like(noise)


def run_training(mp, job: TrainingRound, latent_shape: tuple[int, ...]) -> None:
    """Let the host prepare `mp` (loading, conds, wrappers) and run `job` as its 'sampler'."""
    guider = comfy.samplers.CFGGuider(mp)
    guider.inner_set_conds({"positive": job.group_conds})
    guider.set_cfg(1.0)
    pairs = job.settings.batch_size * job.settings.pairs_per_sample
    noise = torch.zeros((pairs, *latent_shape[1:]))
    sigmas = torch.tensor([1.0, 0.0])
    with torch.inference_mode(False):
        guider.sample(noise, torch.zeros_like(noise), _TrainSampler(job), sigmas, seed=0)
