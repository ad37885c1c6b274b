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

from comfy_papa.core.settings import TUNED_INPUTS, FinetuneSettings

from .graph import Graph, run
from .outputs import saved_latent

# Fine-tune settings of the learning tests and of bench/learning_margin.py: the PAPA Fine-tune
# node's own defaults (what an artist who changes nothing gets), one definition for all of them.
_DEFAULTS = FinetuneSettings()
DIGITS_FINETUNE = {
    name: getattr(_DEFAULTS, name) for name in (*TUNED_INPUTS, "gradient_checkpointing", "c_anchor")
}


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


def read_digits(latents: torch.Tensor) -> torch.Tensor:
    """The classifier's digit per sample (latents are the pixel-space VAE's [-1, 1])."""
    from comfy_papa.digits.classifier import classify

    images = ((latents.float() + 1) / 2).clamp(0, 1).mean(1, keepdim=True)
    return classify(images).argmax(-1)


def liked_digits(latents: torch.Tensor, preferred: str) -> torch.Tensor:
    """The classifier reads a preferred digit."""
    from comfy_papa.digits.rules import parse_digits

    wanted = torch.tensor(sorted(parse_digits(preferred)))
    return torch.isin(read_digits(latents), wanted)


def preferred_entropy(latents: torch.Tensor, preferred: str) -> float:
    """Normalised entropy of the preferred digits' histogram among the samples: 1 when they are
    drawn equally often, 0 when one of them takes all (a collapse)."""
    from comfy_papa.digits.rules import parse_digits

    wanted = sorted(parse_digits(preferred))
    counts = torch.bincount(read_digits(latents), minlength=10)[wanted].double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum() / torch.log(torch.tensor(float(len(wanted)))))


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
    out = {"threshold": threshold, "limit": limit, "before": before, "after": after}
    if src.oracle == "digits":
        final = sample_latents(server, src, profile, 64, 95_000 + seed)
        out["after_64"] = float(liked_digits(final, src.preferred).float().mean())
        out["entropy_before"] = preferred_entropy(base, src.preferred)
        out["entropy_after"] = preferred_entropy(final, src.preferred)
    return out
