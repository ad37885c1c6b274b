"""A profile round end to end: gather feedback, train on the base MODEL, commit, personalise."""

from __future__ import annotations

import secrets

import torch

from ..core.replay import CondGroups
from ..core.round import RoundLoop, round_seed
from ..core.schedule import sigma_cut
from ..core.settings import FinetuneSettings
from ..feedback import Feedback
from ..profile.pending import commit_trained_round, merge_pending
from ..profile.store import Profile
from .adapters import apply_baked, apply_gated, attach_trainable, mark_personalised
from .conditioning import conditioning_to_tensors, tensors_to_conditioning
from .models import model_fingerprint, require_base_model
from .train import TrainingRound, host_round, run_training, schedule_sigmas, training_clone


def record_if_new(profile: Profile, fb: Feedback) -> str:
    """Persist feedback that did not come through the picker (which records on arrival)."""
    if fb.profile and fb.profile != profile.name:
        raise ValueError(
            f"This feedback was collected for profile {fb.profile!r}, but Fine-tune trains "
            f"profile {profile.name!r}. Connect the same PAPA Profile node to both."
        )
    if fb.request_id and (
        fb.request_id in profile.manifest.get("consumed_requests", [])
        or any(p.request_id == fb.request_id for p in profile.pending())
    ):
        return fb.request_id
    rid = fb.request_id or f"labels-{secrets.token_hex(8)}"
    profile.record_feedback(
        rid,
        fb.round if fb.round is not None else profile.round + 1,
        fb.candidate_ids,
        fb.labels,
        fb.latents,
        conditioning_to_tensors(fb.positive),
        {"source": "labels" if not fb.request_id else "picker"},
    )
    return rid


def group_conditionings(groups: CondGroups) -> list:
    """The CONDITIONING of each group, in group order (the host's `_predict` indexes it)."""
    return [c for _, tensors in groups.items() for c in tensors_to_conditioning(tensors)]


def personalise(
    model, lora_sd: dict, settings: FinetuneSettings, profile: str, round_: int, strength=1.0
):
    """The output MODEL: PAPA bakes the adapter in; EPAPA gates it above the sigma cut."""
    if settings.method == "EPAPA":
        ms = model.get_model_object("model_sampling")
        out = apply_gated(model, lora_sd, sigma_cut(schedule_sigmas(ms), settings.cut), strength)
    else:
        out = apply_baked(model, lora_sd, strength)
    mark_personalised(out, profile, round_, settings.method)
    return out


def finetune(
    model,
    feedback: Feedback,
    profile: Profile,
    settings: FinetuneSettings,
    progress=None,
    round_cls: type[RoundLoop] = TrainingRound,
):
    """Train one round on the BASE model; returns (personalised MODEL, LORA_MODEL, stats).

    `round_cls` is the optimisation loop: the PAPA objective, or (benchmark only) a baseline's
    `core.round.RoundLoop` subclass with its own loss on the same adapters, replay and sampling
    (run through `host_round`, as `PapaSession.finetune` runs it on diffusers)."""
    require_base_model(model, "PAPA Fine-tune")
    fingerprint = model_fingerprint(model)
    profile.check_base(fingerprint)
    state = profile.load_round()
    if state.adapter:
        saved_rank = int(state.adapter_meta.get("rank", settings.rank))
        if saved_rank != settings.rank:
            raise ValueError(
                f"Profile {profile.name!r} was trained with rank {saved_rank}; this node asks for "
                f"rank {settings.rank}. Set rank to {saved_rank}, or reset the profile."
            )
    record_if_new(profile, feedback)
    replay, groups, consumed = merge_pending(profile, state)
    if progress is not None:
        # What the round learns from, for the panel's progress line ("5 likes, 3 dislikes").
        counts, report = replay.label_counts(), progress

        def progress(step, steps, stats, losses):
            told = {**stats, "likes": counts["like"], "dislikes": counts["dislike"]}
            return report(step, steps, told, losses)

    if int((replay.labels != 0).sum()) == 0:
        raise ValueError(
            "Nothing to train on: every candidate so far is marked skip. Like or dislike at least "
            "one candidate."
        )
    # Graph execution runs under inference mode; adapters must be created outside it.
    with torch.inference_mode(False):
        mp = training_clone(model)  # never a dynamic-VRAM patcher (ComfyUI 0.38+)
        adapters = attach_trainable(
            mp, settings.rank, settings.alpha, state.adapter or None, settings.seed
        )
        round_ = profile.round + 1
        job = host_round(round_cls)(
            adapters,
            replay,
            group_conditionings(groups),
            settings,
            state.optimizer,
            round_seed=round_seed(settings.seed, round_),
            progress=progress,
            ref_is_base=not state.adapter,
        )
        run_training(mp, job, tuple(replay.latents.shape))
    lora_sd = adapters.state_dict()
    if not all(torch.isfinite(v).all() for v in lora_sd.values()):
        raise ValueError(
            "Training produced non-finite adapter weights; the profile was left at round "
            f"{profile.round}. Lower the learning rate and queue again."
        )
    if not job.losses:
        raise ValueError(
            f"Every training step had a non-finite loss ({job.skipped_steps} skipped); the "
            f"profile was left at round {profile.round}. Lower the learning rate."
        )
    meta = {"rank": str(settings.rank), "alpha": str(settings.alpha)}
    stats = commit_trained_round(
        profile, job, round_, lora_sd, meta, groups, fingerprint, settings, consumed
    )
    out = personalise(model, lora_sd, settings, profile.name, round_)
    return out, lora_sd, {**stats, "losses": job.losses, "round": round_}
