"""Labels recorded but not yet trained, merged into the replay: one definition for every backend.

A round trains on the last round's replay plus every pending feedback file. Conditionings are
stored once per distinct value as "g<i>.<key>" tensors (`RoundState.conds`) and each replayed
candidate carries its group index in `replay.cond["group"]`.
"""

from __future__ import annotations

import copy

import torch

from ..core.replay import ReplayBuffer
from .store import Profile, RoundState


def cond_group(conds: dict[str, torch.Tensor], cond: dict[str, torch.Tensor]) -> int:
    """Index of an identical stored conditioning, or a new group index for it (added to conds)."""
    groups = sorted({int(k.split(".", 1)[0][1:]) for k in conds})
    for g in groups:
        mine = {k.split(".", 1)[1]: v for k, v in conds.items() if k.startswith(f"g{g}.")}
        if mine.keys() == cond.keys() and all(
            mine[k].shape == cond[k].shape and torch.equal(mine[k], cond[k]) for k in cond
        ):
            return g
    g = (groups[-1] + 1) if groups else 0
    conds.update({f"g{g}.{k}": v for k, v in cond.items()})
    return g


def merge_pending(profile: Profile, state: RoundState) -> tuple[ReplayBuffer, dict, list[str]]:
    """The replay buffer of the last round plus every recorded-but-untrained feedback, the
    conditioning groups, and the request ids this round consumes."""
    replay = copy.deepcopy(state.replay)
    conds = dict(state.conds)
    consumed = []
    for p in profile.pending():
        g = cond_group(conds, p.cond)
        n = len(p.ids)
        replay.add(
            p.latents.float(),
            p.labels.float(),
            torch.full((n,), p.round, dtype=torch.long),
            [f"{p.request_id}:{cid}" for cid in p.ids],
            {"group": torch.full((n,), g, dtype=torch.long)},
        )
        consumed.append(p.request_id)
    return replay, conds, consumed
