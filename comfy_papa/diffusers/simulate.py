"""A simulated user driving a PapaSession: sample, label with an oracle, fine-tune, repeat."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .session import PapaSession

Oracle = Callable[[torch.Tensor], torch.Tensor]  # latents [N, ...] -> liked [N] (bool)


def liked_fraction(session: PapaSession, oracle: Oracle, n: int, seed: int, steps: int) -> float:
    """Fraction of n fresh samples (fixed seed) that the oracle likes."""
    cand = session.sample(n, seed=seed, steps=steps)
    session.forget(cand.ids)
    return float(oracle(cand.latents).float().mean())


def simulated_rounds(
    session: PapaSession,
    oracle: Oracle,
    rounds: int,
    per_round: int,
    sample_steps: int,
    dislikes: bool = True,
    seed: int = 0,
    **finetune,
) -> list[dict]:
    """`rounds` rounds of: sample per_round candidates, label them (+1 liked; -1 disliked, or 0
    when `dislikes` is False), fine-tune with `finetune` (PapaSession.finetune arguments).
    Returns each round's fine-tune stats."""
    out = []
    for r in range(rounds):
        cand = session.sample(per_round, seed=seed * 1000 + r, steps=sample_steps)
        liked = oracle(cand.latents)
        labels = [1.0 if v else (-1.0 if dislikes else 0.0) for v in liked.tolist()]
        session.give_labels(cand.ids, labels)
        if any(labels):
            out.append(session.finetune(seed=seed, **finetune))
    return out
