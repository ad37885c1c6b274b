"""The PAPA / EPAPA loop on a v-prediction MODEL in a real ComfyUI server.

The tiny SD1.5 checkpoint is turned into a v-prediction model by the core node
ModelSamplingDiscrete (sampling=v_prediction), the way artists load v-prediction checkpoints
whose file does not say so. Training must then use the v target: the model sampling it reads is
the patched one the sampler uses, not the checkpoint's epsilon.
"""

import torch
from papa_graphs import (
    apply_core_base_latents,
    base_nodes,
    epapa_gate_diffs,
    export_lora,
    finetune_node,
    sampler_node,
)

from comfy_papa.profile.store import Profile
from harness.graph import Graph, run
from harness.outputs import ui_text


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
    return export_lora(server, name, "papa_v_", timeout=1200)


def test_vpred_papa_round_trains_and_core_loraloader_samples_like_apply_profile(
    comfy, checkpoint_name
):
    lora = _train_and_export(comfy, checkpoint_name, "v-papa", "PAPA")
    state = Profile.open(comfy.base / "models" / "papa_profiles", "v-papa", create=False)
    assert state.round == 1
    a, b, base = apply_core_base_latents(
        comfy, lambda g: _vpred(g, checkpoint_name), "v-papa", lora, "v", timeout=1200
    )
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"


def test_vpred_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(comfy, checkpoint_name):
    lora = _train_and_export(comfy, checkpoint_name, "v-gate", "EPAPA")
    k, diffs = epapa_gate_diffs(
        comfy, lambda g: _vpred(g, checkpoint_name), "v-gate", lora, "v_gate", timeout=1200
    )
    assert diffs[k] < 1e-3, diffs
    floor = 50 * max(diffs[k], 1e-6)
    assert diffs[k - 1] > floor and diffs[k + 1] > floor, diffs
