"""One PAPA / EPAPA training round on a ComfyUI MODEL, run through the host's own sampling stack.

The round runs inside a `comfy.samplers.Sampler` given to a guider (as core's TrainLoraNode does):
the guider loads the model with only the residency the batch needs, converts the conditioning
for the model family, and our sampler runs the optimisation loop instead of denoising.
"""

from __future__ import annotations

import time

import comfy.model_management
import comfy.model_sampling
import comfy.samplers
import comfy.utils
import torch
from torch.utils.checkpoint import checkpoint

from ..core.objective import mc_timestep_batch, papa_loss
from ..core.optim import guarded_step, restore_optimizer
from ..core.replay import ReplayBuffer
from ..core.settings import FinetuneSettings
from .adapters import AdapterSet

# The node's settings; one definition with the diffusers backend's (core.settings).
TrainSettings = FinetuneSettings


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


class TrainingRound:
    """The optimisation loop of one round; `run` is called from inside the guider's sampling."""

    def __init__(
        self,
        adapters: AdapterSet,
        replay: ReplayBuffer,
        group_conds: list,
        settings: TrainSettings,
        optimizer_state: dict[str, torch.Tensor],
        round_seed: int,
        progress=None,
    ) -> None:
        self.adapters = adapters
        self.replay = replay
        self.group_conds = group_conds
        self.settings = settings
        self.cfg = settings.papa_config()
        self.names = list(adapters.parameters())
        self.optimizer = torch.optim.AdamW(
            adapters.parameters().values(), lr=settings.learning_rate, weight_decay=0.0
        )
        # Restored in `run`, once the host has loaded the adapter where it trains: the optimizer
        # then places the moments on each parameter's device (on a GPU, restoring here left them
        # on the CPU and every round after the first failed at its first step).
        self._optimizer_state = optimizer_state
        self.round_seed = round_seed
        self.progress = progress
        self.losses: list[float] = []
        self.skipped_steps = 0
        self.passes = 0
        self.seconds = 0.0

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

    def make_batch(self, gen, x0_all, labels_all, groups_all, sigmas, kind, device) -> dict:
        """One step's (sample, timestep) pairs: a replay minibatch expanded by Monte Carlo over
        timesteps (`mc_timestep_batch`). The benchmark's baselines override this and
        `compute_loss` to train the same adapters with their own objectives."""
        idx = self.replay.sample(self.settings.batch_size, gen).to(device)
        return mc_timestep_batch(
            x0_all[idx], {"group": groups_all[idx]}, labels_all[idx], sigmas, kind, self.cfg, gen
        )

    def compute_loss(self, b: dict, x0_pred, x0_base):
        """The PAPA loss of a batch from `make_batch`, given the adapted and base predictions."""
        return papa_loss(
            x0_pred, x0_base, b["x0"], b["snr"], b["coef"], b["labels"], self.cfg, b["anchor"]
        )

    def run(self, model_wrap, extra_args) -> None:
        start = time.perf_counter()
        inner = model_wrap.inner_model
        self._processed = list(model_wrap.conds["positive"])
        ms = inner.model_sampling
        kind = model_kind(ms)
        sigmas = schedule_sigmas(ms)
        device = comfy.model_management.get_torch_device()
        dtype = torch.float32
        restore_optimizer(self.optimizer, self.names, self._optimizer_state)
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.learning_rate
        x0_all = inner.process_latent_in(self.replay.latents.to(device, dtype))
        labels_all = self.replay.labels.to(device, dtype)
        groups_all = self.replay.cond["group"].to(device)
        gen = torch.Generator().manual_seed(self.round_seed)
        steps = self.settings.steps
        pbar = comfy.utils.ProgressBar(steps)
        for step in range(steps):
            b = self.make_batch(gen, x0_all, labels_all, groups_all, sigmas, kind, device)
            x_noisy = ms.noise_scaling(b["sigma"].to(dtype), b["noise"].to(dtype), b["x0"])
            sigma = b["sigma"].to(dtype)
            groups = b["cond"]["group"]
            with torch.no_grad():
                self.adapters.gate.on = False
                try:
                    x0_base = self._predict(model_wrap, extra_args, x_noisy, sigma, groups)
                finally:
                    self.adapters.gate.on = True
            x0_pred = self._predict(model_wrap, extra_args, x_noisy, sigma, groups)
            loss, stats = self.compute_loss(b, x0_pred.float(), x0_base.float())
            self.passes += len(sigma)
            params = self.adapters.parameters().values()
            if guarded_step(self.optimizer, loss, stats["loss"], params):
                self.losses.append(stats["loss"])
            else:
                self.skipped_steps += 1
            preview = None
            if self.progress:
                preview = self.progress(step + 1, steps, stats["loss"], self.losses)
            pbar.update_absolute(step + 1, steps, preview)  # raises if the run was interrupted
        self.seconds = time.perf_counter() - start


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
