"""One PAPA / EPAPA training round on a ComfyUI MODEL, run through the host's own sampling stack.

The round runs inside a `comfy.samplers.Sampler` given to a guider (as core's TrainLoraNode does):
the guider loads the model with only the residency the batch needs, converts the conditioning
for the model family, and our sampler runs the optimisation loop instead of denoising.
"""

from __future__ import annotations

import os

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

# The model-sampling (prediction) types of `comfy.model_sampling` PAPA trains, by exact class,
# and the core kind each one is noised as (core.schedule). Looked up by name with getattr, so a
# ComfyUI that lacks a name (0.3.75 has no V_PREDICTION_DDPM) simply has no such entry.
# - EPS, V_PREDICTION, X0, V_PREDICTION_DDPM, EDM: noised x = x0 + sigma * eps (their
#   noise_scaling); they differ in what the network predicts, which the host turns into x0
#   (calculate_denoised), so PAPA's x0-space loss and SNR = 1 / sigma^2 hold for each.
#   STABLE_CASCADE models use EPS. EDM (Playground v2.5) is kept as before (it trained as v
#   already); its sigma_data (0.5) is not modelled: its SNR is taken as 1 / sigma^2 too.
# - CONST (SD3, Flux, ...): rectified flow, x = sigma * eps + (1 - sigma) * x0.
SUPPORTED_SAMPLING = {
    "EPS": "eps",
    "V_PREDICTION": "v",
    "EDM": "v",
    "X0": "x0",
    "V_PREDICTION_DDPM": "v",
    "CONST": "flow",
}
# Types PAPA refuses by name, with the reason.
REFUSED_SAMPLING = {
    "IMG_TO_IMG": (
        "an image-to-image model: it is conditioned on an input image and not trained to denoise "
        "generated candidates from noise"
    ),
    "IMG_TO_IMG_FLOW": (
        "an image-to-image flow model: its noise_scaling returns the input latent unchanged, so "
        "there is no noise level to train over"
    ),
    "IMG_TO_IMG_VELOCITY": (
        "an image-to-image velocity model: its noise_scaling returns the input latent unchanged, "
        "so there is no noise level to train over"
    ),
    "COSMOS_RFLOW": (
        "Cosmos rectified flow: its inputs are rescaled to flow time sigma / (1 + sigma), a "
        "parametrisation PAPA's timestep weights are not derived for"
    ),
}


def sampling_type(model_sampling) -> type:
    """The prediction type of a ComfyUI model-sampling object: ComfyUI builds it as
    `class ModelSampling(<schedule>, <type>)`, the schedule a torch Module and the type a plain
    class (EPS, CONST, ...), so the type is the first non-Module class of its MRO."""
    for cls in type(model_sampling).__mro__:
        if cls is object or issubclass(cls, torch.nn.Module):
            continue
        return cls
    return type(model_sampling)


def model_kind(model_sampling) -> str:
    """The core's kind ("eps", "v", "x0", "flow") of a ComfyUI model, by the exact class of its
    prediction type (`SUPPORTED_SAMPLING`); every other type is refused with its name. Exact, not
    isinstance: X0 and IMG_TO_IMG subclass EPS and IMG_TO_IMG_FLOW subclasses CONST, yet they
    predict something else."""
    cls = sampling_type(model_sampling)
    for name, kind in SUPPORTED_SAMPLING.items():
        if getattr(comfy.model_sampling, name, None) is cls:
            return kind
    name = cls.__name__
    if getattr(comfy.model_sampling, name, None) is cls and name in REFUSED_SAMPLING:
        why = REFUSED_SAMPLING[name]
    else:
        why = "not a type PAPA knows how to train"
    supported = ", ".join(n for n in SUPPORTED_SAMPLING if hasattr(comfy.model_sampling, n))
    raise ValueError(
        f"PAPA cannot train this model: its sampling type is {name} "
        f"({cls.__module__}.{cls.__qualname__}), {why}. Supported types: {supported}. If a "
        "ModelSampling node (e.g. ModelSamplingDiscrete set to lcm) changed the type, connect "
        "Fine-tune to the model before that node."
    )


def training_clone(model):
    """A clone of the MODEL `model` that training can use: never a dynamic-VRAM patcher.

    ComfyUI 0.38+ loads models with `ModelPatcherDynamic` when dynamic VRAM is on (the default on
    NVIDIA). Its `load` attaches weight functions only to layers above a size threshold and hands
    them views of shared buffers, so adapters on the other layers would be neither trained nor
    applied. `clone(disable_dynamic=True)` is the host's own way to get an ordinary patcher for
    the same model (core's TorchCompileModel uses it); older hosts have no `is_dynamic` and
    always give an ordinary one."""
    is_dynamic = getattr(model, "is_dynamic", None)
    if not (callable(is_dynamic) and is_dynamic()):
        return model.clone()
    try:
        mp = model.clone(disable_dynamic=True)
    except Exception as e:  # the host could not rebuild the model without dynamic VRAM
        raise RuntimeError(
            "PAPA Fine-tune needs an ordinary (non-dynamic) copy of this model to train, and "
            f"ComfyUI could not make one ({type(e).__name__}: {e}). Start ComfyUI with "
            "--disable-dynamic-vram and queue again."
        ) from e
    if getattr(mp, "is_dynamic", lambda: False)():
        raise RuntimeError(
            "ComfyUI returned a dynamic-VRAM model where PAPA Fine-tune asked for an ordinary "
            "one; adapters would silently not be trained. Start ComfyUI with "
            "--disable-dynamic-vram and queue again."
        )
    return mp


def load_for_training(mp) -> None:
    """Load `mp` fully on the device before training, as core's TrainLoraNode does
    (`load_models_gpu(..., force_full_load=True)`, asking for all free memory): no layer stays
    offloaded, so no weight is cast per use into a reused stream buffer while autograd holds it,
    and every layer runs through its weight functions (our adapters). The guider's own load
    afterwards finds the model loaded and keeps it."""
    comfy.model_management.load_models_gpu([mp], memory_required=1e20, force_full_load=True)


# Test-only: after the host has loaded the model for training, unload this many bytes of it
# again (weights then live on the offload device and are cast per use), to exercise the
# offloaded-weights path on a CPU-only host where ComfyUI never loads partially by itself.
TEST_OFFLOAD_ENV = "COMFY_PAPA_TEST_OFFLOAD_BYTES"


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
        self.patcher = None  # the ModelPatcher trained on (set by run_training)

    def module_applied(self, name: str) -> bool:
        return self.adapters.calls(name) > 0

    def coverage_hint(self) -> str:
        return (
            "Their weight wrapper was never called: the model was loaded in a way that skips "
            "weight functions (dynamic VRAM on ComfyUI 0.38+ with NVIDIA, a partially loaded / "
            "offloaded model, or a custom node that replaces the layers' weight functions). "
            "Nothing was saved. Start ComfyUI with --disable-dynamic-vram, remove model-patching "
            "custom nodes between the loader and Fine-tune, and queue again; if it persists, "
            "report it with your ComfyUI version and model."
        )

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
        offload = int(os.environ.get(TEST_OFFLOAD_ENV, "0") or 0)
        if offload and self.patcher is not None:
            self.patcher.partially_unload(self.patcher.offload_device, offload)

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
            # The progress hook raises on an interrupt, but ComfyUI 0.38 throttles it: check
            # ourselves after every step.
            comfy.model_management.throw_exception_if_processing_interrupted()
            preview = None
            if self.progress:
                preview = self.progress(step, steps, stats, self.losses)
            pbar.update_absolute(step, steps, preview)

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
    """Let the host prepare `mp` (loading, conds, wrappers) and run `job` as its 'sampler'.

    `mp` comes from `training_clone` (never dynamic VRAM) and is loaded fully first."""
    job.patcher = mp
    load_for_training(mp)
    guider = comfy.samplers.CFGGuider(mp)
    guider.inner_set_conds({"positive": job.group_conds})
    guider.set_cfg(1.0)
    pairs = job.settings.batch_size * job.settings.pairs_per_sample
    noise = torch.zeros((pairs, *latent_shape[1:]))
    sigmas = torch.tensor([1.0, 0.0])
    with torch.inference_mode(False):
        guider.sample(noise, torch.zeros_like(noise), _TrainSampler(job), sigmas, seed=0)
