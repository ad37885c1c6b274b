"""Graph builders shared by the host tests: the PAPA round on the tiny SD1.5 checkpoint."""

import json
import uuid

import torch

from comfy_papa.profile.store import Profile
from harness.finetune import finetune_node as finetune
from harness.graph import Graph, queue, run, wait
from harness.outputs import saved_latent, ui_text
from harness.picker import answer, history, wait_pending

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


# ---- one round labelled in the picker over HTTP, for the model-family loop tests -------------
PICKER_LABELS = ["like", "dislike", "like", "dislike"]


def picker_round(base, profile: str, method: str, cut: float, steps: int, timesteps: int) -> Graph:
    """Profile -> Apply -> Candidate Sampler -> VAE Decode -> Picker -> Fine-tune, on the model
    `base(g)` loads; the Fine-tune node carries its settings as its own inputs (an API prompt
    written before PAPA Training Options)."""
    g = Graph()
    ckpt, pos, neg, empty = base(g)
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    applied = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=1.0)
    cand = sampler_node(g, applied[0], pos, neg, empty, count=len(PICKER_LABELS), steps=3)
    dec = g.node("VAEDecode", samples=cand[0], vae=ckpt[2])
    picked = g.node(
        "PAPAPreferencePicker",
        images=dec[0],
        candidates=cand[1],
        profile=prof[0],
        timeout=600,
        on_timeout="fail",
    )
    g.node(
        "PAPAFineTune",
        node_id="ft",
        model=ckpt[0],
        feedback=picked[0],
        profile=prof[0],
        method=method,
        cut=cut,
        steps=steps,
        learning_rate=1e-2,
        rank=4,
        alpha=4.0,
        c_pref=0.1,
        c_sim=0.009,
        batch_size=4,
        timesteps_per_sample=timesteps,
        seed=0,
        gradient_checkpointing=False,
    )
    return g


def answer_over_http(server, graph: Graph, profile: str, pending_timeout, timeout) -> Profile:
    """Queue a `picker_round` graph, answer its picker with PICKER_LABELS over HTTP (as the
    browser panel would) and wait for the round: the profile, checked to hold round 1 and the
    labels."""
    client = uuid.uuid4().hex
    prompt_id = queue(server.url, graph, client)
    req = wait_pending(server.url, client, timeout=pending_timeout)
    r = answer(server.url, req["request_id"], PICKER_LABELS)
    assert r.status_code == 200, r.text
    result = wait(server.url, prompt_id, timeout=timeout)
    assert result.ok, result.error()
    assert "round 1" in ui_text(result, "ft")
    assert [row["label"] for row in history(server.base, profile)] == [1.0, -1.0, 1.0, -1.0]
    p = Profile.open(server.base / "models" / "papa_profiles", profile, create=False)
    assert p.round == 1
    return p


# ---- comparisons after a trained round (any model family: `base(g)` builds its loader) ------
STEPS = 8  # sampling steps of the comparisons


def export_lora(server, profile: str, prefix: str, timeout: float = 300.0) -> str:
    """PAPA Export LoRA of the profile's current round; the file name it wrote."""
    g = Graph()
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename=prefix)
    r = run(server.url, g, timeout=timeout)
    assert r.ok, r.error()
    return json.loads(ui_text(r, "export"))["lora"]


def ksampler(
    g: Graph,
    model,
    pos,
    neg,
    latent,
    seed,
    start=0,
    end=10000,
    add_noise="enable",
    left="disable",
    steps=STEPS,
):
    """Core KSamplerAdvanced (euler, normal, cfg 1) over steps start..end of the schedule."""
    return g.node(
        "KSamplerAdvanced",
        model=model,
        positive=pos[0],
        negative=neg[0],
        latent_image=latent[0],
        noise_seed=seed,
        steps=steps,
        cfg=1.0,
        sampler_name="euler",
        scheduler="normal",
        add_noise=add_noise,
        start_at_step=start,
        end_at_step=end,
        return_with_leftover_noise=left,
    )


def apply_core_base_latents(server, base, profile: str, lora: str, tag: str, timeout=300.0):
    """The same seed sampled through PAPA Apply Profile, core LoraLoaderModelOnly on the exported
    `lora`, and the base model: the three latents. `base(g)` -> (model, pos, neg, empty)."""
    g = Graph()
    model, pos, neg, empty = base(g)
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    mine = g.node("PAPAApplyProfile", model=model[0], profile=prof[0], strength=1.0)
    core = g.node("LoraLoaderModelOnly", model=model[0], lora_name=lora, strength_model=1.0)
    for name, m in (("mine", mine[0]), ("core", core[0]), ("base", model[0])):
        ks = ksampler(g, m, pos, neg, empty, 11)
        g.node("SaveLatent", node_id=name, samples=ks[0], filename_prefix=f"{tag}_{name}")
    r = run(server.url, g, timeout=timeout)
    assert r.ok, r.error()
    return tuple(saved_latent(server, r, t) for t in ("mine", "core", "base"))


def gate_steps(steps: int, cut: float = 0.4, table: int = 1000) -> int:
    """How many steps of ComfyUI's 'normal' schedule sit at timestep >= cut*T, i.e. sigma >= cut.

    The normal schedule visits timesteps linspace(T-1, 0, steps); sigma grows with the timestep.
    """
    ts = torch.linspace(table - 1, 0, steps)
    return int((ts >= int(cut * table)).sum())


def epapa_gate_diffs(server, base, profile: str, lora: str, tag: str, timeout=300.0, k=None):
    """EPAPA's gate, measured: the sample of Apply Profile (adapter gated at the cut) against
    samples that use the exported adapter everywhere for the first `split` steps and the base
    model after, for split = k-1, k, k+1 (k: the steps above the cut, default gate_steps(STEPS)).
    Strength 3 makes one step with or without the adapter clearly visible. Returns k and
    {split: max abs difference}."""
    k = gate_steps(STEPS) if k is None else k
    strength = 3.0
    g = Graph()
    model, pos, neg, empty = base(g)
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    gated = g.node("PAPAApplyProfile", model=model[0], profile=prof[0], strength=strength)
    always = g.node("LoraLoaderModelOnly", model=model[0], lora_name=lora, strength_model=strength)
    full = ksampler(g, gated[0], pos, neg, empty, 5)
    g.node("SaveLatent", node_id="full", samples=full[0], filename_prefix=f"{tag}_full")
    for split in (k - 1, k, k + 1):
        head = ksampler(g, always[0], pos, neg, empty, 5, end=split, left="enable")
        tail = ksampler(g, model[0], pos, neg, head, 5, start=split, add_noise="disable")
        g.node("SaveLatent", node_id=f"s{split}", samples=tail[0], filename_prefix=tag)
    r = run(server.url, g, timeout=timeout)
    assert r.ok, r.error()
    full_lat = saved_latent(server, r, "full")
    splits = (k - 1, k, k + 1)
    return k, {s: (saved_latent(server, r, f"s{s}") - full_lat).abs().max().item() for s in splits}
