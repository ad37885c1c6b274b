"""An unattended PAPA loop through the real nodes, labelled by a synthetic oracle.

The oracle likes a candidate when its mean latent value is above a threshold (the median of the
base model's samples), i.e. "likes images brighter than the base model's median" in latent space.
Used by the learning test and by bench/learning_margin.py (which measures the margin over seeds).
"""

from __future__ import annotations

import torch

from .graph import Graph, run
from .outputs import saved_latent


def _nodes(g: Graph, checkpoint: str, profile: str, size: int):
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
    pos = g.node("CLIPTextEncode", clip=ckpt[1], text="a bright sky")
    neg = g.node("CLIPTextEncode", clip=ckpt[1], text="")
    empty = g.node("EmptyLatentImage", width=size, height=size, batch_size=1)
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    model = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=1.0)
    return ckpt, pos, neg, empty, prof, model


def _sampler(g, model, pos, neg, empty, count, seed, steps):
    return g.node(
        "PAPACandidateSampler",
        node_id="cand",
        model=model[0],
        positive=pos[0],
        negative=neg[0],
        latent=empty[0],
        count=count,
        seed=seed,
        steps=steps,
        cfg=1.0,
        sampler_name="euler",
        scheduler="normal",
    )


def sample_latents(server, checkpoint, profile, count, seed, size=32, steps=4) -> torch.Tensor:
    g = Graph()
    ckpt, pos, neg, empty, prof, model = _nodes(g, checkpoint, profile, size)
    cand = _sampler(g, model, pos, neg, empty, count, seed, steps)
    g.node("SaveLatent", node_id="save", samples=cand[0], filename_prefix=f"oracle_{profile}")
    r = run(server.url, g, timeout=600)
    assert r.ok, r.error()
    return saved_latent(server, r, "save")


def brightness(latents: torch.Tensor) -> torch.Tensor:
    return latents.float().flatten(1).mean(1)


def labelled_round(
    server,
    checkpoint,
    profile,
    threshold,
    seed,
    finetune: dict,
    count=8,
    dislike="-",
    size=32,
    steps=4,
) -> dict:
    """Sample, label by the oracle, fine-tune: one round. Returns the fine-tune node's ui."""
    lat = sample_latents(server, checkpoint, profile, count, seed, size, steps)
    labels = " ".join("+" if b > threshold else dislike for b in brightness(lat).tolist())
    g = Graph()
    ckpt, pos, neg, empty, prof, model = _nodes(g, checkpoint, profile, size)
    cand = _sampler(g, model, pos, neg, empty, count, seed, steps)
    fb = g.node("PAPALabels", metadata=cand[1], labels=labels, profile=prof[0])
    g.node("PAPAFineTune", node_id="ft", model=ckpt[0], feedback=fb[0], profile=prof[0], **finetune)
    r = run(server.url, g, timeout=900)
    assert r.ok, r.error()
    return {"labels": labels, "ui": r.outputs["ft"]}


def liked_fraction(server, checkpoint, profile, threshold, n=32, seed=90_000, size=32) -> float:
    lat = sample_latents(server, checkpoint, profile, n, seed, size)
    return float((brightness(lat) > threshold).float().mean())


def run_loop(
    server, checkpoint, profile, finetune: dict, rounds=5, count=8, seed=0, dislike="-"
) -> dict:
    base = sample_latents(server, checkpoint, profile, 32, 50_000 + seed)
    threshold = float(brightness(base).median())
    before = liked_fraction(server, checkpoint, profile, threshold, seed=90_000 + seed)
    for r in range(rounds):
        labelled_round(
            server, checkpoint, profile, threshold, 1000 * (seed + 1) + r * count, finetune, count
        )
    after = liked_fraction(server, checkpoint, profile, threshold, seed=90_000 + seed)
    return {"threshold": threshold, "before": before, "after": after}
