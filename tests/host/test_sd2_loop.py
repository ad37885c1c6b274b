"""The PAPA / EPAPA loop on a tiny random SD2.x v-prediction checkpoint in a real ComfyUI server.

The file says nothing about v-prediction: ComfyUI's loader decides it (SD20.model_type), and the
Fine-tune node must train with the v target the sampler then uses. SD2's text encoder is the
OpenCLIP ViT-H tower (context 1024, penultimate layer).
"""

import json

import pytest
import torch
from papa_graphs import base_nodes, labelled_round

from comfy_papa.profile.store import Profile
from harness.comfy_server import ComfyServer, make_base_directory
from harness.graph import Graph, run
from harness.outputs import saved_latent, ui_text
from harness.tiny_models import SD2_CHECKPOINT, ensure_tiny_sd2

STEPS = 8
TIMEOUT = 1200
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sd2(tmp_path_factory):
    base = make_base_directory(tmp_path_factory.mktemp("comfy-sd2"), ensure_tiny_sd2())
    server = ComfyServer(base).start()
    yield server
    server.stop()


def _train_and_export(server, name: str, method: str) -> str:
    g = labelled_round(
        SD2_CHECKPOINT, name, "+ - + - + -", seed=3, method=method, learning_rate=1e-2, steps=6
    )
    r = run(server.url, g, timeout=TIMEOUT)
    assert r.ok, r.error()
    assert "round 1" in ui_text(r, "ft")
    assert Profile.open(server.base / "models" / "papa_profiles", name, create=False).round == 1
    g = Graph()
    prof = g.node("PAPAProfile", name=name, rollback_to_round=-1, reset=False)
    g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename="papa_sd2_")
    r = run(server.url, g, timeout=TIMEOUT)
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


def test_sd2_vpred_papa_round_core_loraloader_samples_like_apply_profile(sd2):
    lora = _train_and_export(sd2, "sd2-papa", "PAPA")
    g = Graph()
    ckpt, pos, neg, empty = base_nodes(g, SD2_CHECKPOINT)
    prof = g.node("PAPAProfile", name="sd2-papa", rollback_to_round=-1, reset=False)
    mine = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=1.0)
    core = g.node("LoraLoaderModelOnly", model=ckpt[0], lora_name=lora, strength_model=1.0)
    for tag, m in (("mine", mine[0]), ("core", core[0]), ("base", ckpt[0])):
        ks = _ksampler(g, m, pos, neg, empty, 11)
        g.node("SaveLatent", node_id=tag, samples=ks[0], filename_prefix=f"sd2_{tag}")
    r = run(sd2.url, g, timeout=TIMEOUT)
    assert r.ok, r.error()
    a, b, base = (saved_latent(sd2, r, t) for t in ("mine", "core", "base"))
    assert a.isfinite().all()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"
    assert "model_type V_PREDICTION" in sd2.log(), "the loader must see a v-prediction model"


def _gate_steps(steps: int, cut: float = 0.4, table: int = 1000) -> int:
    ts = torch.linspace(table - 1, 0, steps)
    return int((ts >= int(cut * table)).sum())


def test_sd2_vpred_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(sd2):
    lora = _train_and_export(sd2, "sd2-gate", "EPAPA")
    k = _gate_steps(STEPS)
    strength = 3.0
    g = Graph()
    ckpt, pos, neg, empty = base_nodes(g, SD2_CHECKPOINT)
    prof = g.node("PAPAProfile", name="sd2-gate", rollback_to_round=-1, reset=False)
    gated = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=strength)
    always = g.node("LoraLoaderModelOnly", model=ckpt[0], lora_name=lora, strength_model=strength)
    full = _ksampler(g, gated[0], pos, neg, empty, 5)
    g.node("SaveLatent", node_id="full", samples=full[0], filename_prefix="sd2_gate_full")
    for split in (k - 1, k, k + 1):
        head = _ksampler(g, always[0], pos, neg, empty, 5, end=split, left="enable")
        tail = _ksampler(g, ckpt[0], pos, neg, head, 5, start=split, add_noise="disable")
        g.node("SaveLatent", node_id=f"s{split}", samples=tail[0], filename_prefix="sd2_gate")
    r = run(sd2.url, g, timeout=TIMEOUT)
    assert r.ok, r.error()
    full_lat = saved_latent(sd2, r, "full")
    diffs = {
        s: (saved_latent(sd2, r, f"s{s}") - full_lat).abs().max().item() for s in (k - 1, k, k + 1)
    }
    assert diffs[k] < 1e-3, diffs
    floor = 50 * max(diffs[k], 1e-6)
    assert diffs[k - 1] > floor and diffs[k + 1] > floor, diffs
