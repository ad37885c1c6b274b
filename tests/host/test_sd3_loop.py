"""The whole PAPA / EPAPA loop on a tiny random SD3 checkpoint in a real ComfyUI server.

SD3 differs from the UNet families in what the loop must carry through: an MMDiT (joint
attention over image and text tokens, adaLN modulation, no convolutions past the patch
embedding), a 16-channel latent with its own scale and shift, rectified-flow sampling (ComfyUI's
CONST, x = sigma * eps + (1 - sigma) * x0, shifted schedule), and CLIP-L + CLIP-G conditioning
with a pooled vector, here without T5-XXL (which ComfyUI's SD3 loader makes optional).
"""

import math

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

from harness.comfy_server import ComfyServer, make_base_directory
from harness.graph import Graph
from harness.tiny_models import SD3_CHECKPOINT, ensure_tiny_sd3

pytestmark = pytest.mark.slow
SIZE = 32  # 4x4 latents, 2x2 patches
TIMEOUT = 1200
SHIFT = 3.0  # comfy.supported_models.SD3.sampling_settings
CUT = 0.4


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    base = make_base_directory(tmp_path_factory.mktemp("comfy-sd3"), ensure_tiny_sd3())
    server = ComfyServer(base).start()
    yield server
    server.stop()


def _base(g: Graph, prompt: str = "a red fox"):
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=SD3_CHECKPOINT)
    pos = g.node("CLIPTextEncode", clip=ckpt[1], text=prompt)
    neg = g.node("CLIPTextEncode", clip=ckpt[1], text="")
    empty = g.node("EmptySD3LatentImage", width=SIZE, height=SIZE, batch_size=1)
    return ckpt, pos, neg, empty


def _train_and_export(server: ComfyServer, profile: str, method: str) -> str:
    """One round labelled over HTTP (as the browser panel would), then Export LoRA."""
    graph = picker_round(_base, profile, method, cut=CUT, steps=6, timesteps=2)
    p = answer_over_http(server, graph, profile, pending_timeout=TIMEOUT, timeout=TIMEOUT)
    state = p.load_round()
    # the candidates are 16-channel SD3 latents, retrained on with the prompt they were sampled
    # with: CLIP-L | CLIP-G padded to 4096 and the pooled 768 + 1280
    assert tuple(state.replay.latents.shape[1:]) == (16, SIZE // 8, SIZE // 8)
    shapes = {k.split(".", 1)[1]: tuple(v.shape) for k, v in state.conds.items()}
    assert shapes == {"cross_attn": (1, 77, 4096), "opt.pooled_output": (1, 2048)}, shapes
    # the adapter reaches the MMDiT's joint blocks: both streams' attention and MLPs, and the
    # adaLN modulation
    ups = [k for k in state.adapter if k.endswith(".lora_up.weight")]
    for part in ("x_block.attn.qkv", "context_block.attn.qkv", "x_block.mlp.fc1"):
        assert any(f"joint_blocks.0.{part}." in k for k in ups), part
    assert any("adaLN_modulation" in k for k in ups)
    trained = [k for k in ups if state.adapter[k].abs().max() > 0]
    assert len(trained) == len(ups), "every adapter's up factor must have moved from zero"
    return export_lora(server, profile, "papa_sd3_", timeout=TIMEOUT)


def _flow_gate_steps(steps: int, cut: float = CUT, shift: float = SHIFT, table: int = 1000) -> int:
    """How many steps of ComfyUI's 'normal' schedule on SD3's flow sampling sit at sigma >= the
    cut's sigma. ModelSamplingDiscreteFlow: table sigma_t = shift(t / T), t = 1..T; timestep(sigma)
    = sigma * T and sigma(ts) = shift(ts / T), so the normal schedule is shift(linspace(sigma_max,
    sigma_min)); the cut is table[floor(cut * T)] (core.schedule.sigma_cut)."""

    def shifted(t: torch.Tensor) -> torch.Tensor:
        return shift * t / (1 + (shift - 1) * t)

    sigmas = shifted(torch.arange(1, table + 1, dtype=torch.float64) / table)
    sigma_cut = sigmas[math.floor(cut * table)]
    visited = shifted(
        torch.linspace(float(sigmas[-1]), float(sigmas[0]), steps, dtype=torch.float64)
    )
    return int((visited >= sigma_cut).sum())


def test_sd3_papa_round_exports_a_lora_core_samples_like_apply_profile(sd3):
    lora = _train_and_export(sd3, "sd3-papa", "PAPA")
    a, b, base = apply_core_base_latents(sd3, _base, "sd3-papa", lora, "sd3", timeout=TIMEOUT)
    assert a.shape[1] == 16
    assert a.isfinite().all()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"
    log = sd3.log()
    assert "Requested to load SD3" in log, "the checkpoint must load as SD3"
    assert "model_type FLOW" in log, "the loader must see a flow model"
    # Apply Profile bakes through the loader core uses: equal samples alone would not show that
    # every exported key reached a layer
    assert "lora key not loaded" not in log


def test_sd3_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(sd3):
    lora = _train_and_export(sd3, "sd3-epapa", "EPAPA")
    k = _flow_gate_steps(STEPS)
    assert 0 < k < STEPS
    k, diffs = epapa_gate_diffs(sd3, _base, "sd3-epapa", lora, "sd3_gate", timeout=TIMEOUT, k=k)
    assert diffs[k] < 1e-3, diffs
    floor = 50 * max(diffs[k], 1e-6)
    assert diffs[k - 1] > floor and diffs[k + 1] > floor, diffs
