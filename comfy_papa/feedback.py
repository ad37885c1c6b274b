"""The data contract between the candidate sampler, the preference picker and the fine-tune node.

Plain dataclasses, no ComfyUI import. `Candidates` travels on the CANDIDATES socket (sampler ->
picker); `Feedback` travels on the FEEDBACK socket (picker or Labels -> fine-tune).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

LABELS = {"like": 1.0, "dislike": -1.0, "skip": 0.0}
LABEL_SYMBOLS = {"+": 1.0, "-": -1.0, "0": 0.0, "like": 1.0, "dislike": -1.0, "skip": 0.0}


@dataclass
class Candidates:
    """N sampled candidates: the clean latents plus how each one was made."""

    latents: torch.Tensor  # [N, C, H, W], ComfyUI latent space (before process_latent_in)
    ids: list[str]
    seeds: list[int]
    settings: dict[str, Any]  # steps, cfg, sampler, scheduler, width, height
    model_fingerprint: str
    positive: Any = None  # ComfyUI CONDITIONING the candidates were sampled with

    def __len__(self) -> int:
        return len(self.ids)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"id": cid, "seed": s, **self.settings}
            for cid, s in zip(self.ids, self.seeds, strict=True)
        ]


@dataclass
class Feedback:
    """Labelled candidates for one round: what the fine-tune node trains on."""

    latents: torch.Tensor  # [N, C, H, W]
    labels: list[float]  # like +1, dislike -1, skip 0 (or a strength in [-1, 1])
    candidate_ids: list[str]
    positive: Any = None  # CONDITIONING shared by the round's candidates
    round: int | None = None
    profile: str | None = None
    request_id: str | None = None
    model_fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.latents.shape[0]
        if len(self.labels) != n or len(self.candidate_ids) != n:
            raise ValueError(
                f"Feedback has {n} latents but {len(self.labels)} labels and "
                f"{len(self.candidate_ids)} candidate ids; give exactly one label per candidate."
            )
        for lab in self.labels:
            if not -1.0 <= float(lab) <= 1.0:
                raise ValueError(f"Label {lab} is outside [-1, 1] (like 1, dislike -1, skip 0).")

    def counts(self) -> dict[str, int]:
        return {
            "like": sum(1 for v in self.labels if v > 0),
            "dislike": sum(1 for v in self.labels if v < 0),
            "skip": sum(1 for v in self.labels if v == 0),
        }


def parse_label_string(text: str) -> list[float]:
    """Parse "+ - + 0 +" (or like/dislike/skip words, or numbers in [-1, 1]) into labels."""
    labels = []
    for tok in text.replace(",", " ").split():
        if tok in LABEL_SYMBOLS:
            labels.append(LABEL_SYMBOLS[tok])
            continue
        try:
            value = float(tok)
        except ValueError:
            raise ValueError(
                f"Unknown label {tok!r}: use + (like), - (dislike), 0 (skip) "
                "or a number in [-1, 1]."
            ) from None
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"Label {tok!r} is outside [-1, 1].")
        labels.append(value)
    if not labels:
        raise ValueError('No labels given: write one per candidate, e.g. "+ - + 0".')
    return labels
