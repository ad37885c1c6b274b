"""Graph builders shared by the host tests: the PAPA round on the tiny SD1.5 checkpoint."""

from harness.finetune import finetune_node as finetune
from harness.graph import Graph

SIZE = 32  # 4x4 latents: training rounds stay cheap on two CPU cores


def base_nodes(g: Graph, checkpoint: str, prompt: str = "a red fox"):
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
    pos = g.node("CLIPTextEncode", clip=ckpt[1], text=prompt)
    neg = g.node("CLIPTextEncode", clip=ckpt[1], text="")
    empty = g.node("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=1)
    return ckpt, pos, neg, empty


def sampler_node(g: Graph, model, pos, neg, empty, count=8, seed=0, steps=4):
    return g.node(
        "PAPACandidateSampler",
        model=model,
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


def finetune_node(g: Graph, model, feedback, profile, node_id="ft", **overrides):
    """PAPA Fine-tune with these tests' settings (a PAPA Training Options node for the finer
    ones), `overrides` on top."""
    settings = dict(
        method="PAPA",
        cut=0.4,
        steps=10,
        learning_rate=1e-3,
        rank=4,
        alpha=4.0,
        c_pref=0.1,
        c_sim=0.009,
        batch_size=8,
        timesteps_per_sample=2,
        seed=0,
        gradient_checkpointing=False,
    )
    settings.update(overrides)
    return finetune(g, model, feedback, profile, node_id=node_id, **settings)


def labelled_round(checkpoint: str, profile: str, labels: str, seed=0, count=None, **ft):
    """Profile -> Apply -> sampler -> Labels -> Fine-tune: one scripted round."""
    g = Graph()
    ckpt, pos, neg, empty = base_nodes(g, checkpoint)
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    applied = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=1.0)
    n = count or len(labels.split())
    cand = sampler_node(g, applied[0], pos, neg, empty, count=n, seed=seed)
    fb = g.node("PAPALabels", metadata=cand[1], labels=labels, profile=prof[0])
    finetune_node(g, ckpt[0], fb[0], prof[0], **ft)
    return g
