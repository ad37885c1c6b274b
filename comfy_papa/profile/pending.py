"""A round's profile side, one definition for every backend: the labels recorded but not yet
trained merged into the replay, and the trained round committed with its statistics.

A round trains on the last round's replay plus every pending feedback file. Conditionings are
stored once per distinct value (`core.replay.CondGroups`, flat in `RoundState.conds`) and each
replayed candidate carries its group index (`ReplayBuffer.groups`).
"""

from __future__ import annotations

import copy

import torch

from ..core.optim import flatten_optimizer
from ..core.replay import GROUP_KEY, CondGroups, ReplayBuffer
from ..core.round import RoundLoop
from ..core.settings import FinetuneSettings
from .store import Profile, RoundState


def merge_pending(
    profile: Profile, state: RoundState
) -> tuple[ReplayBuffer, CondGroups, list[str]]:
    """The replay buffer of the last round plus every recorded-but-untrained feedback, the
    conditioning groups, and the request ids this round consumes."""
    replay = copy.deepcopy(state.replay)
    groups = CondGroups.from_flat(state.conds)
    consumed = []
    for p in profile.pending():
        g = groups.index(p.cond)
        n = len(p.ids)
        replay.add(
            p.latents.float(),
            p.labels.float(),
            torch.full((n,), p.round, dtype=torch.long),
            [f"{p.request_id}:{cid}" for cid in p.ids],
            {GROUP_KEY: torch.full((n,), g, dtype=torch.long)},
        )
        consumed.append(p.request_id)
    return replay, groups, consumed


def round_stats(job: RoundLoop, replay: ReplayBuffer) -> dict:
    """The statistics a committed round records (the trained `job` had at least one step)."""
    return {
        "loss_first": job.losses[0],
        "loss_last": job.losses[-1],
        "skipped_steps": job.skipped_steps,
        "passes": job.passes,
        "reference_passes": job.reference_passes,
        "drift": job.last_stats.get("drift"),
        "seconds": job.seconds,
        "replay": len(replay),
    }


def commit_trained_round(
    profile: Profile,
    job: RoundLoop,
    round_: int,
    adapter: dict[str, torch.Tensor],
    adapter_meta: dict[str, str],
    groups: CondGroups,
    fingerprint: str,
    settings: FinetuneSettings,
    consumed: list[str],
    **extra_stats,
) -> dict:
    """Commit round `round_` trained by `job` on `job.replay`; returns its statistics
    (`round_stats` plus `extra_stats`)."""
    stats = {**round_stats(job, job.replay), **extra_stats}
    state = RoundState(
        round_,
        adapter=adapter,
        adapter_meta=adapter_meta,
        optimizer=flatten_optimizer(job.optimizer, job.names),
        replay=job.replay,
        conds=groups.to_flat(),
    )
    profile.commit_round(state, fingerprint, settings.as_dict(), consumed, stats)
    return stats
