"""The whole PAPA / EPAPA loop on a tiny random SDXL checkpoint in a real ComfyUI server.

SDXL differs from SD1.5 in what the loop must carry through: two text encoders (CLIP-L + CLIP-G),
CLIP-G's pooled output and the ADM size conditioning, all of which the host's own conditioning
and denoiser must see at training time as they did at sampling time.
"""

import json
import uuid

import pytest
import torch
from papa_graphs import (
    STEPS,
    answer_over_http,
    apply_core_base_latents,
    epapa_gate_diffs,
    export_lora,
    picker_round,
)

from harness.browser import open_app
from harness.comfy_server import ComfyServer, make_base_directory
from harness.graph import Graph, queue, wait
from harness.paths import REPO
from harness.picker import answer, history, wait_pending
from harness.tiny_models import SDXL_CHECKPOINT, ensure_tiny_sdxl

pytestmark = pytest.mark.slow
SIZE = 32  # 4x4 latents
SIZE_KEYS = ("width", "height", "target_width", "target_height")


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    base = make_base_directory(tmp_path_factory.mktemp("comfy-sdxl"), ensure_tiny_sdxl())
    server = ComfyServer(base).start()
    yield server
    server.stop()


def _base(g: Graph, prompt: str = "a red fox"):
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=SDXL_CHECKPOINT)
    # CLIPTextEncodeSDXL: the SDXL-specific encoder, with explicit ADM sizes and crops.
    sizes = dict.fromkeys(SIZE_KEYS, 1024)
    pos = g.node(
        "CLIPTextEncodeSDXL",
        clip=ckpt[1],
        text_g=prompt,
        text_l=prompt,
        crop_w=0,
        crop_h=0,
        **sizes,
    )
    neg = g.node(
        "CLIPTextEncodeSDXL", clip=ckpt[1], text_g="", text_l="", crop_w=0, crop_h=0, **sizes
    )
    empty = g.node("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=1)
    return ckpt, pos, neg, empty


def _train_and_export(server: ComfyServer, profile: str, method: str) -> str:
    """One round labelled over HTTP (as the browser panel would), then Export LoRA."""
    graph = picker_round(_base, profile, method, cut=0.4, steps=4, timesteps=1)
    p = answer_over_http(server, graph, profile, pending_timeout=900, timeout=1800)
    state = p.load_round()
    # training retrains on the ADM sizes the candidates were sampled with (not SDXL's 768 default)
    sizes = {k.split(".", 1)[1]: int(v.item()) for k, v in state.conds.items() if ".num." in k}
    assert sizes == {"num.crop_w": 0, "num.crop_h": 0, **{f"num.{k}": 1024 for k in SIZE_KEYS}}
    # the adapter reaches SDXL's linear-projection transformer blocks
    assert any("transformer_blocks" in k and k.endswith(".lora_up.weight") for k in state.adapter)
    return export_lora(server, profile, "papa_sdxl_")


def test_sdxl_papa_round_exports_a_lora_core_samples_like_apply_profile(sdxl):
    lora = _train_and_export(sdxl, "sdxl-papa", "PAPA")
    a, b, base = apply_core_base_latents(sdxl, _base, "sdxl-papa", lora, "sdxl", timeout=1800)
    assert a.isfinite().all()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"
    assert "Requested to load SDXL" in sdxl.log(), "the checkpoint must load as SDXL"


def test_sdxl_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(sdxl):
    lora = _train_and_export(sdxl, "sdxl-epapa", "EPAPA")
    k, diffs = epapa_gate_diffs(sdxl, _base, "sdxl-epapa", lora, "sdxl_gate", timeout=1800)
    assert 0 < k < STEPS
    assert diffs[k] < 1e-3, diffs
    floor = 50 * max(diffs[k], 1e-6)
    assert diffs[k - 1] > floor and diffs[k + 1] > floor, diffs


def _set_inputs(prompt: dict, class_type: str, **values) -> None:
    hits = [n for n in prompt.values() if n["class_type"] == class_type]
    assert hits, f"no {class_type} in the prompt"
    for n in hits:
        n["inputs"].update(values)


def test_epapa_sdxl_workflow_runs_end_to_end_answered_over_http(sdxl, browser):
    """workflows/epapa_loop_sdxl.json as shipped, converted to API format by the frontend itself
    (app.graphToPrompt), with only the checkpoint and the sizes/steps made tiny."""
    wf = json.loads((REPO / "workflows" / "epapa_loop_sdxl.json").read_text())
    page, _ = open_app(browser, sdxl.url)
    try:
        page.evaluate("async (wf) => { await app.loadGraphData(wf); }", wf)
        prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    finally:
        page.context.close()
    name = f"wf-sdxl-{uuid.uuid4().hex[:8]}"
    _set_inputs(prompt, "CheckpointLoaderSimple", ckpt_name=SDXL_CHECKPOINT)
    _set_inputs(prompt, "PAPAProfile", name=name)
    _set_inputs(prompt, "EmptyLatentImage", width=SIZE, height=SIZE)
    _set_inputs(prompt, "PAPACandidateSampler", count=3, steps=2)
    _set_inputs(prompt, "PAPAFineTune", steps=2, batch_size=3, timesteps_per_sample=1)
    _set_inputs(prompt, "KSampler", steps=2)
    ft = next(n for n in prompt.values() if n["class_type"] == "PAPAFineTune")
    assert ft["inputs"]["method"] == "EPAPA"
    client = uuid.uuid4().hex
    prompt_id = queue(sdxl.url, prompt, client)
    req = wait_pending(sdxl.url, client, timeout=900)
    r = answer(sdxl.url, req["request_id"], ["like", "dislike", "like"])
    assert r.status_code == 200, r.text
    result = wait(sdxl.url, prompt_id, timeout=1800)
    assert result.ok, result.error()
    assert [o for o in result.outputs.values() if o.get("images")], result.outputs
    assert [row["label"] for row in history(sdxl.base, name)] == [1.0, -1.0, 1.0]
    manifest = json.loads(
        (sdxl.base / "models" / "papa_profiles" / name / "manifest.json").read_text()
    )
    assert manifest["round"] == 1, "the fine-tune committed round 1"
