"""An unattended PAPA loop through the real nodes, labelled by a synthetic oracle.

Two oracles. "brightness": likes a candidate when its mean latent value is above a threshold (the
median of the base model's samples), "likes images brighter than the base model's median" (for
the pixel-space digits model, more ink). "digits": the paper's own user, who likes a digits-model
sample when the digit classifier (the PAPA Simulated User's) reads one of the preferred digits.
Used by the learning test and by bench/learning_margin.py, which measures the margin over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .graph import Graph, run
from .outputs import saved_latent

# Fine-tune settings of the digits learning test and of bench/learning_margin.py, which measures
# the margin the test asserts: one definition so the two cannot drift apart.
DIGITS_FINETUNE = dict(
    cut=0.4,
    steps=10,
    learning_rate=5e-4,
    rank=8,
    alpha=8.0,
    c_pref=0.1,
    c_sim=0.009,
    batch_size=8,
    timesteps_per_sample=2,
    gradient_checkpointing=False,
)


@dataclass(frozen=True)
class Source:
    """Where the base model comes from, and how candidates are sampled."""

    kind: str = "digits"  # "digits" (PAPA Digits Demo Loader) or "checkpoint"
    checkpoint: str = ""
    size: int = 32
    steps: int = 8
    sampler: str = "euler"
    scheduler: str = "normal"
    # The oracle only likes samples inside the range of the base model's own samples: a model
    # that "gets brighter" by blowing up out of range is not learning a taste.
    range_check: bool = True
    oracle: str = "brightness"  # or "digits" (digits model only)
    preferred: str = "1,4,7,9"


def _nodes(g: Graph, src: Source, profile: str):
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    if src.kind == "digits":
        loader = g.node("PAPADigitsDemoLoader", batch_size=1)
        base, pos, neg, empty = loader[0], loader[2], loader[2], loader[3]
    else:
        ckpt = g.node("CheckpointLoaderSimple", ckpt_name=src.checkpoint)
        base = ckpt[0]
        pos = g.node("CLIPTextEncode", clip=ckpt[1], text="a bright sky")[0]
        neg = g.node("CLIPTextEncode", clip=ckpt[1], text="")[0]
        empty = g.node("EmptyLatentImage", width=src.size, height=src.size, batch_size=1)[0]
    model = g.node("PAPAApplyProfile", model=base, profile=prof[0], strength=1.0)
    return base, pos, neg, empty, prof, model


def _sampler(g, src: Source, model, pos, neg, empty, count, seed):
    return g.node(
        "PAPACandidateSampler",
        node_id="cand",
        model=model[0],
        positive=pos,
        negative=neg,
        latent=empty,
        count=count,
        seed=seed,
        steps=src.steps,
        cfg=1.0,
        sampler_name=src.sampler,
        scheduler=src.scheduler,
    )


def sample_latents(server, src: Source, profile: str, count: int, seed: int) -> torch.Tensor:
    g = Graph()
    base, pos, neg, empty, prof, model = _nodes(g, src, profile)
    cand = _sampler(g, src, model, pos, neg, empty, count, seed)
    g.node("SaveLatent", node_id="save", samples=cand[0], filename_prefix=f"oracle_{profile}")
    r = run(server.url, g, timeout=600)
    assert r.ok, r.error()
    return saved_latent(server, r, "save")


def brightness(latents: torch.Tensor) -> torch.Tensor:
    return latents.float().flatten(1).mean(1)


def peak(latents: torch.Tensor) -> torch.Tensor:
    return latents.float().flatten(1).abs().amax(1)


def liked_brightness(latents: torch.Tensor, threshold: float, limit: float | None) -> torch.Tensor:
    ok = brightness(latents) > threshold
    if limit is not None:
        ok &= peak(latents) <= limit
    return ok


def liked_digits(latents: torch.Tensor, preferred: str) -> torch.Tensor:
    """The classifier reads a preferred digit (latents are the pixel-space VAE's [-1, 1])."""
    from comfy_papa.digits.classifier import classify
    from comfy_papa.digits.rules import parse_digits

    images = ((latents.float() + 1) / 2).clamp(0, 1).mean(1, keepdim=True)
    digits = classify(images).argmax(-1)
    wanted = torch.tensor(sorted(parse_digits(preferred)))
    return torch.isin(digits, wanted)


def liked(latents, threshold, limit, src: Source | None = None) -> torch.Tensor:
    if src is not None and src.oracle == "digits":
        return liked_digits(latents, src.preferred)
    return liked_brightness(latents, threshold, limit)


def labelled_round(
    server, src, profile, threshold, seed, finetune: dict, count=8, dislike="-", limit=None
):
    """Sample, label by the oracle, fine-tune: one round. Returns labels and the node's ui."""
    lat = sample_latents(server, src, profile, count, seed)
    labels = " ".join("+" if ok else dislike for ok in liked(lat, threshold, limit, src).tolist())
    g = Graph()
    base, pos, neg, empty, prof, model = _nodes(g, src, profile)
    cand = _sampler(g, src, model, pos, neg, empty, count, seed)
    fb = g.node("PAPALabels", metadata=cand[1], labels=labels, profile=prof[0])
    g.node("PAPAFineTune", node_id="ft", model=base, feedback=fb[0], profile=prof[0], **finetune)
    r = run(server.url, g, timeout=900)
    assert r.ok, r.error()
    return {"labels": labels, "ui": r.outputs["ft"]}


def liked_fraction(server, src, profile, threshold, n=32, seed=90_000, limit=None) -> float:
    lat = sample_latents(server, src, profile, n, seed)
    return float(liked(lat, threshold, limit, src).float().mean())


def run_loop(server, src, profile, finetune: dict, rounds=5, count=8, seed=0, dislike="-"):
    """Base threshold, liked fraction before, `rounds` oracle-labelled rounds, fraction after."""
    base = sample_latents(server, src, profile, 64, 50_000 + seed)
    threshold = float(brightness(base).median())
    limit = float(peak(base).quantile(0.9)) * 1.1 if src.range_check else None
    before = liked_fraction(server, src, profile, threshold, seed=90_000 + seed, limit=limit)
    for r in range(rounds):
        labelled_round(
            server,
            src,
            profile,
            threshold,
            1000 * (seed + 1) + r * count,
            finetune,
            count,
            dislike,
            limit,
        )
    after = liked_fraction(server, src, profile, threshold, seed=90_000 + seed, limit=limit)
    return {"threshold": threshold, "limit": limit, "before": before, "after": after}
