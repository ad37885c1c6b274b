"""The PAPA / EPAPA loop on a v-prediction MODEL in a real ComfyUI server.

The tiny SD1.5 checkpoint is turned into a v-prediction model by the core node
ModelSamplingDiscrete (sampling=v_prediction), the way artists load v-prediction checkpoints
whose file does not say so. Training must then use the v target: the model sampling it reads is
the patched one the sampler uses, not the checkpoint's epsilon.
"""

import json

import torch
from papa_graphs import base_nodes, finetune_node, sampler_node

from comfy_papa.profile.store import Profile
from harness.graph import Graph, run
from harness.outputs import saved_latent, ui_text

STEPS = 8


def _vpred(g: Graph, checkpoint: str):
    ckpt, pos, neg, empty = base_nodes(g, checkpoint)
    v = g.node("ModelSamplingDiscrete", model=ckpt[0], sampling="v_prediction", zsnr=False)
    return v, pos, neg, empty


def _train_and_export(server, checkpoint: str, name: str, method: str) -> str:
    g = Graph()
    model, pos, neg, empty = _vpred(g, checkpoint)
    prof = g.node("PAPAProfile", name=name, rollback_to_round=-1, reset=False)
    applied = g.node("PAPAApplyProfile", model=model[0], profile=prof[0], strength=1.0)
    cand = sampler_node(g, applied[0], pos, neg, empty, count=6, seed=3)
    fb = g.node("PAPALabels", metadata=cand[1], labels="+ - + - + -", profile=prof[0])
    finetune_node(g, model[0], fb[0], prof[0], method=method, learning_rate=1e-2, steps=8)
    r = run(server.url, g, timeout=1200)
    assert r.ok, r.error()
    assert "round 1" in ui_text(r, "ft")
    g = Graph()
    prof = g.node("PAPAProfile", name=name, rollback_to_round=-1, reset=False)
    g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename="papa_v_")
    r = run(server.url, g, timeout=1200)
    assert r.ok, r.error()
    return json.loads(ui_text(r, "export"))["lora"]


def _ksampler(
    g, model, pos, neg, latent, seed, start=0, end=10000, add_noise="enable", left="disable"
):
    return g.node(
        "KSamplerAdvanced",
        model=model,
        positive=pos[0],
        negative=neg[0],
        latent_image=latent[0],
        noise_seed=seed,
        steps=STEPS,
        cfg=1.0,
        sampler_name="euler",
        scheduler="normal",
        add_noise=add_noise,
        start_at_step=start,
        end_at_step=end,
        return_with_leftover_noise=left,
    )


def test_vpred_papa_round_trains_and_core_loraloader_samples_like_apply_profile(
    comfy, checkpoint_name
):
    lora = _train_and_export(comfy, checkpoint_name, "v-papa", "PAPA")
    state = Profile.open(comfy.base / "models" / "papa_profiles", "v-papa", create=False)
    assert state.round == 1
    g = Graph()
    model, pos, neg, empty = _vpred(g, checkpoint_name)
    prof = g.node("PAPAProfile", name="v-papa", rollback_to_round=-1, reset=False)
    mine = g.node("PAPAApplyProfile", model=model[0], profile=prof[0], strength=1.0)
    core = g.node("LoraLoaderModelOnly", model=model[0], lora_name=lora, strength_model=1.0)
    for tag, m in (("mine", mine[0]), ("core", core[0]), ("base", model[0])):
        ks = _ksampler(g, m, pos, neg, empty, 11)
        g.node("SaveLatent", node_id=tag, samples=ks[0], filename_prefix=f"v_{tag}")
    r = run(comfy.url, g, timeout=1200)
    assert r.ok, r.error()
    a, b, base = (saved_latent(comfy, r, t) for t in ("mine", "core", "base"))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"


def _gate_steps(steps: int, cut: float = 0.4, table: int = 1000) -> int:
    ts = torch.linspace(table - 1, 0, steps)
    return int((ts >= int(cut * table)).sum())


def test_vpred_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(comfy, checkpoint_name):
    lora = _train_and_export(comfy, checkpoint_name, "v-gate", "EPAPA")
    k = _gate_steps(STEPS)
    strength = 3.0
    g = Graph()
    model, pos, neg, empty = _vpred(g, checkpoint_name)
    prof = g.node("PAPAProfile", name="v-gate", rollback_to_round=-1, reset=False)
    gated = g.node("PAPAApplyProfile", model=model[0], profile=prof[0], strength=strength)
    always = g.node("LoraLoaderModelOnly", model=model[0], lora_name=lora, strength_model=strength)
    full = _ksampler(g, gated[0], pos, neg, empty, 5)
    g.node("SaveLatent", node_id="full", samples=full[0], filename_prefix="v_gate_full")
    for split in (k - 1, k, k + 1):
        head = _ksampler(g, always[0], pos, neg, empty, 5, end=split, left="enable")
        tail = _ksampler(g, model[0], pos, neg, head, 5, start=split, add_noise="disable")
        g.node("SaveLatent", node_id=f"s{split}", samples=tail[0], filename_prefix="v_gate")
    r = run(comfy.url, g, timeout=1200)
    assert r.ok, r.error()
    full_lat = saved_latent(comfy, r, "full")
    diffs = {
        s: (saved_latent(comfy, r, f"s{s}") - full_lat).abs().max().item()
        for s in (k - 1, k, k + 1)
    }
    assert diffs[k] < 1e-3, diffs
    floor = 50 * max(diffs[k], 1e-6)
    assert diffs[k - 1] > floor and diffs[k + 1] > floor, diffs
