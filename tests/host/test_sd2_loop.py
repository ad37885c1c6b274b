"""The PAPA / EPAPA loop on a tiny random SD2.x v-prediction checkpoint in a real ComfyUI server.

The file says nothing about v-prediction: ComfyUI's loader decides it (SD20.model_type), and the
Fine-tune node must train with the v target the sampler then uses. SD2's text encoder is the
OpenCLIP ViT-H tower (context 1024, penultimate layer).
"""

import pytest
import torch
from papa_graphs import (
    apply_core_base_latents,
    base_nodes,
    epapa_gate_diffs,
    export_lora,
    labelled_round,
)

from comfy_papa.profile.store import Profile
from harness.comfy_server import ComfyServer, make_base_directory
from harness.graph import Graph, run
from harness.outputs import ui_text
from harness.tiny_models import SD2_CHECKPOINT, ensure_tiny_sd2

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
    return export_lora(server, name, "papa_sd2_", timeout=TIMEOUT)


def _base(g: Graph):
    return base_nodes(g, SD2_CHECKPOINT)


def test_sd2_vpred_papa_round_core_loraloader_samples_like_apply_profile(sd2):
    lora = _train_and_export(sd2, "sd2-papa", "PAPA")
    a, b, base = apply_core_base_latents(sd2, _base, "sd2-papa", lora, "sd2", timeout=TIMEOUT)
    assert a.isfinite().all()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"
    assert "model_type V_PREDICTION" in sd2.log(), "the loader must see a v-prediction model"


def test_sd2_vpred_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(sd2):
    lora = _train_and_export(sd2, "sd2-gate", "EPAPA")
    k, diffs = epapa_gate_diffs(sd2, _base, "sd2-gate", lora, "sd2_gate", timeout=TIMEOUT)
    assert diffs[k] < 1e-3, diffs
    floor = 50 * max(diffs[k], 1e-6)
    assert diffs[k - 1] > floor and diffs[k + 1] > floor, diffs
