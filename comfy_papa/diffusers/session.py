"""The PAPA loop on a diffusers UNet: sample candidates, record labels, fine-tune, export.

    session = PapaSession.open("profiles", "my-taste", pipe)       # or (unet, scheduler)
    cand = session.sample(8, seed=0, steps=30, context=prompt_embeds)
    session.give_labels(cand.ids, [1, -1, 0, 1, ...])
    session.finetune(steps=20, learning_rate=1e-4)
    session.export_lora("my-taste.safetensors")                    # kohya: diffusers and ComfyUI

The profile on disk is the same `profile.store.Profile` the ComfyUI nodes use (labels, replay,
rounds, optimizer state); for an SD-architecture UNet the adapter is stored under ComfyUI's names.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..core.objective import noise_x
from ..core.replay import GROUP_KEY, CondGroups
from ..core.round import RoundLoop, round_seed
from ..core.schedule import cut_index
from ..core.settings import FinetuneSettings
from ..profile.atomic import atomic_write
from ..profile.names import ProfileError
from ..profile.pending import commit_trained_round, merge_pending
from ..profile.store import Profile
from .adapters import PeftAdapter
from .denoiser import Denoiser
from .keys import peft_to_kohya

EXPORT_FORMATS = ("kohya", "comfy", "peft")


@dataclass
class Candidates:
    """One sampling call: ids, and latents in the stored (VAE-latent) space: UNet-space samples
    divided by the session's latent_scale (decode SD latents with vae.decode(latents))."""

    ids: list[str]
    latents: torch.Tensor
    context: torch.Tensor | None


def unet_fingerprint(unet: torch.nn.Module) -> str:
    """A short id of a diffusers base UNet: class, parameter names and shapes, 1-D norm values
    (adapters leave norms alone). Not comparable with ComfyUI's fingerprint of the same weights."""
    h = hashlib.sha256(b"diffusers:" + type(unet).__name__.encode())
    for name, p in unet.named_parameters():
        if ".lora_" in name:
            continue
        name = name.replace(".base_layer.", ".")
        h.update(f"{name}:{tuple(p.shape)};".encode())
        if p.ndim == 1 and "norm" in name:
            h.update(p.detach().to("cpu", torch.float32).numpy().tobytes())
    return "diffusers-" + h.hexdigest()[:16]


class PapaSession:
    """A profile bound to one diffusers UNet and scheduler; the UNet carries its adapter."""

    def __init__(
        self,
        profile: Profile,
        denoiser: Denoiser,
        adapter: PeftAdapter,
        fingerprint: str,
        latent_scale: float,
    ) -> None:
        self.profile = profile
        self.denoiser = denoiser
        self.adapter = adapter
        self.fingerprint = fingerprint
        self.latent_scale = latent_scale
        self._candidates: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        profiles_dir: str | Path,
        name: str,
        pipe_or_unet,
        scheduler=None,
        *,
        rank: int | None = None,
        alpha: float | None = None,
        latent_scale: float | None = None,
        create: bool = True,
    ) -> PapaSession:
        """Open (or create) profile `name` under `profiles_dir` on a diffusers pipeline or UNet.

        The UNet gets a peft adapter "papa" holding the profile's current round (base model at
        round 0). rank/alpha default to the profile's (8/8 for a new one). latent_scale maps the
        UNet's space to stored latents (default: the pipeline VAE's scaling_factor, else 1).
        """
        unet = getattr(pipe_or_unet, "unet", pipe_or_unet)
        scheduler = scheduler or getattr(pipe_or_unet, "scheduler", None)
        if scheduler is None:
            raise ValueError(
                "no scheduler: pass a diffusers pipeline, or a UNet and its DDPMScheduler / "
                "DDIMScheduler (it defines the training noise schedule)."
            )
        if latent_scale is None:
            vae = getattr(pipe_or_unet, "vae", None)
            latent_scale = float(vae.config.scaling_factor) if vae is not None else 1.0
        profile = Profile.open(Path(profiles_dir), name, create=create)
        state = profile.load_round()
        meta = state.adapter_meta
        rank = int(meta.get("rank", rank or 8)) if rank is None else rank
        alpha = float(meta.get("alpha", alpha or rank)) if alpha is None else alpha
        fingerprint = unet_fingerprint(unet)
        adapter = PeftAdapter.attach(unet, rank, alpha)
        if state.adapter:
            adapter.load(state.adapter)
        session = cls(profile, Denoiser(unet, scheduler), adapter, fingerprint, latent_scale)
        unet.requires_grad_(False)
        adapter.enable(True)
        return session

    @property
    def settings(self) -> FinetuneSettings:
        """The settings of the profile's current round (the defaults before the first)."""
        return self.profile.settings

    # ---- sampling ------------------------------------------------------------------------
    def _gate(self):
        """EPAPA profiles: the adapter denoises timesteps >= the cut, the base model below."""
        settings = self.settings
        if settings.method != "EPAPA":
            return None
        k = cut_index(len(self.denoiser.sigmas), settings.cut)
        return lambda t: self.adapter.enable(t >= k)

    def sample(
        self,
        n: int,
        seed: int,
        steps: int = 50,
        context: torch.Tensor | None = None,
        eta: float = 1.0,
        personalised: bool = True,
        size: int | None = None,
    ) -> Candidates:
        """n candidates from the personalised model (or the base one), remembered for labels.

        `size`: latent side (default: the UNet config's sample_size)."""
        unet = self.denoiser.unet
        cfg = unet.config
        if size is None:
            size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        device = next(unet.parameters()).device
        gen = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn((n, cfg.in_channels, size, size), generator=gen).to(device)
        gate = self._gate() if personalised else None
        self.adapter.enable(personalised)
        try:
            x = self.denoiser.sample(noise, steps, context, gen, eta=eta, on_step=gate)
        finally:
            self.adapter.enable(True)
        latents = (x / self.latent_scale).float().cpu()
        stamp = secrets.token_hex(3)
        ids = [f"r{self.profile.round + 1}-s{seed}-{stamp}-{i}" for i in range(n)]
        ctx = None if context is None else context[:1].detach().float().cpu()
        for i, cid in enumerate(ids):
            self._candidates[cid] = (latents[i], ctx)
        return Candidates(ids, latents, ctx)

    # ---- labels --------------------------------------------------------------------------
    def give_labels(
        self, ids: list[str], labels: list[float], request_id: str | None = None
    ) -> str:
        """Persist labels (+1 like, -1 dislike, 0 skip) for sampled candidates; returns the
        request id. Durable on return (Profile.record_feedback)."""
        unknown = [i for i in ids if i not in self._candidates]
        if unknown:
            raise ValueError(
                f"unknown candidate ids {unknown[:3]}: label candidates returned by this "
                "session's sample()."
            )
        contexts = {id(self._candidates[i][1]) for i in ids}
        if len(contexts) > 1:
            raise ValueError(
                "these candidates were sampled with different contexts; give the labels of each "
                "sample() call separately."
            )
        latents = torch.stack([self._candidates[i][0] for i in ids])
        ctx = self._candidates[ids[0]][1]
        rid = request_id or f"diffusers-{secrets.token_hex(8)}"
        self.profile.record_feedback(
            rid,
            self.profile.round + 1,
            list(ids),
            [float(v) for v in labels],
            latents,
            {} if ctx is None else {"cross_attn": ctx},
            {"source": "diffusers"},
        )
        for i in ids:
            del self._candidates[i]
        return rid

    def forget(self, ids: list[str]) -> None:
        """Drop sampled candidates that will not be labelled."""
        for i in ids:
            self._candidates.pop(i, None)

    # ---- fine-tuning ---------------------------------------------------------------------
    def finetune(self, round_cls: type[RoundLoop] = RoundLoop, **overrides) -> dict:
        """Train one round on every label so far (replay) and commit it to the profile.

        Keyword arguments are FinetuneSettings fields (steps, learning_rate, method, cut, ...);
        rank and alpha are the session's. `round_cls` is the optimisation loop: PAPA's, or
        (benchmark only) a baseline's subclass with its own `make_batch` / `compute_loss` (as the
        ComfyUI backend's `host.rounds.finetune(round_cls=...)`); its batches carry `idx`, the
        timestep index the denoiser takes.
        """
        settings = FinetuneSettings(
            **{**overrides, "rank": self.adapter.rank, "alpha": self.adapter.alpha}
        )
        self.profile.check_base(self.fingerprint)
        state = self.profile.load_round()
        replay, groups, consumed = merge_pending(self.profile, state)
        if len(replay) == 0 or int((replay.labels != 0).sum()) == 0:
            raise ValueError(
                "Nothing to train on: no liked or disliked candidate yet. Label some with "
                "give_labels() first."
            )
        round_ = self.profile.round + 1
        job = round_cls(
            self.adapter.parameters(),
            replay,
            settings,
            state.optimizer,
            round_seed(settings.seed, round_),
            ref_is_base=not state.adapter,
        )
        den = self.denoiser
        device = next(den.unet.parameters()).device
        contexts = self._group_contexts(groups, device)

        def predict(b: dict, adapter_on: bool) -> torch.Tensor:
            x = noise_x(b["x0"], b["noise"], b["sigma"], den.kind)
            ctx = None if contexts is None else contexts[b["cond"][GROUP_KEY]]
            self.adapter.enable(adapter_on)
            try:
                return den(x, b["idx"], ctx)
            finally:
                self.adapter.enable(True)

        den.unet.train(False)
        job.train(
            predict,
            replay.latents.to(device, torch.float32) * self.latent_scale,
            replay.labels.to(device, torch.float32),
            replay.groups.to(device),
            den.sigmas,
            den.kind,
            device,
        )
        losses, skipped = job.losses, job.skipped_steps
        sd = self.adapter.state_dict()
        if not losses or not all(torch.isfinite(v).all() for v in sd.values()):
            self.adapter.load(state.adapter) if state.adapter else self._zero_adapter()
            raise ValueError(
                f"Training diverged ({skipped} non-finite steps); the profile was left at round "
                f"{self.profile.round}. Lower the learning rate."
            )
        meta = {
            "rank": str(self.adapter.rank),
            "alpha": str(self.adapter.alpha),
            "naming": self.adapter.naming,
        }
        stats = commit_trained_round(
            self.profile,
            job,
            round_,
            sd,
            meta,
            groups,
            self.fingerprint,
            settings,
            consumed,
            host="diffusers",
        )
        return {**stats, "losses": losses, "round": round_}

    def _group_contexts(self, groups: CondGroups, device) -> torch.Tensor | None:
        """The prompt embedding of each conditioning group, stacked in group order."""
        if not self.denoiser.conditional:
            return None
        items = list(groups.items())
        if [g for g, _ in items] != list(range(len(items))) or any(
            "cross_attn" not in tensors for _, tensors in items
        ):
            raise ValueError(
                "the profile's labels carry no prompt embeddings for this conditional UNet; "
                "sample candidates with context=... before labelling them."
            )
        return torch.cat([tensors["cross_attn"] for _, tensors in items]).to(device, torch.float32)

    def _zero_adapter(self) -> None:
        with torch.no_grad():
            for k, p in self.adapter.parameters().items():
                if k.endswith(".lora_down.weight"):
                    p.zero_()

    # ---- export --------------------------------------------------------------------------
    def lora_state_dict(self, format: str = "kohya") -> dict[str, torch.Tensor]:
        """The current round's adapter as a LoRA state dict.

        kohya: read by diffusers (`load_lora_weights`) and ComfyUI (LoraLoader) with their own
        converters. comfy: the profile layout (what PAPA Export LoRA writes). peft: diffusers'
        in-memory layout with the "unet." prefix; its scale alpha/rank is folded into lora_B so
        that readers that ignore alphas get the same weights.
        """
        if format not in EXPORT_FORMATS:
            raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {format!r}.")
        if format == "comfy":
            if self.adapter.naming != "ldm":
                raise ValueError(
                    "this UNet has no ComfyUI (LDM) names; export format='kohya' or 'peft'."
                )
            return self.adapter.state_dict()
        peft_sd = self.adapter.peft_state_dict()
        if format == "peft":
            scale = self.adapter.alpha / self.adapter.rank
            return {k: v * scale if ".lora_B." in k else v for k, v in peft_sd.items()}
        alphas = {name: self.adapter.alpha for name in self.adapter.names}
        return peft_to_kohya(peft_sd, alphas)

    def export_lora(self, path: str | Path, format: str = "kohya", overwrite: bool = False) -> Path:
        """Write the current round's adapter to `path` (safetensors) with provenance metadata.
        An existing file at `path` is replaced only with `overwrite=True`."""
        if Path(path).exists() and not overwrite:
            raise FileExistsError(
                f"{path} exists already; nothing was written. Choose another path, or pass "
                "overwrite=True to replace it."
            )
        if self.profile.round == 0:
            raise ProfileError(
                f"Profile {self.profile.name!r} has no trained round yet; call finetune() first."
            )
        sd = {k: v.detach().contiguous().cpu() for k, v in self.lora_state_dict(format).items()}
        meta = {
            "comfy_papa.format": f"comfy-papa-lora/1+{format}",
            "comfy_papa.profile": self.profile.name,
            "comfy_papa.round": str(self.profile.round),
            "comfy_papa.base_fingerprint": self.fingerprint,
            "comfy_papa.host": "diffusers",
            "ss_network_dim": str(self.adapter.rank),
            "ss_network_alpha": str(self.adapter.alpha),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))
        return path
