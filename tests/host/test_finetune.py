"""PAPA Fine-tune in a real ComfyUI: a round commits to the profile, outputs behave as promised."""

import pytest
import torch
from papa_graphs import (
    STEPS,
    apply_core_base_latents,
    base_nodes,
    epapa_gate_diffs,
    export_lora,
    labelled_round,
)

from comfy_papa.profile.store import Profile
from harness.graph import run
from harness.outputs import ui_text


def profiles_dir(server):
    return server.base / "models" / "papa_profiles"


def test_round_commits_labels_adapter_and_history(comfy, checkpoint_name):
    result = run(comfy.url, labelled_round(checkpoint_name, "ft-basic", "+ - + 0", steps=3))
    assert result.ok, result.error()
    assert "round 1" in ui_text(result, "ft")
    p = Profile.open(profiles_dir(comfy), "ft-basic", create=False)
    assert p.round == 1
    assert [h["label"] for h in p.history()] == [1.0, -1.0, 1.0, 0.0]
    assert p.pending() == [], "feedback must be consumed by the committed round"
    state = p.load_round()
    assert state.replay.label_counts() == {"like": 2, "dislike": 1, "skip": 1}
    assert any(k.endswith(".lora_up.weight") for k in state.adapter)
    assert any(v.abs().sum() > 0 for k, v in state.adapter.items() if "lora_down" in k)
    assert state.optimizer, "optimizer state must persist for the next round"


def test_personalised_model_given_as_base_is_refused(comfy, checkpoint_name):
    run(comfy.url, labelled_round(checkpoint_name, "ft-stack", "+ -", steps=1))
    g = labelled_round(checkpoint_name, "ft-stack", "+ -", steps=1)
    # feed the personalised MODEL (Apply Profile's output) where the base one belongs
    g.nodes["ft"]["inputs"]["model"] = [
        next(k for k, v in g.nodes.items() if v["class_type"] == "PAPAApplyProfile"),
        0,
    ]
    result = run(comfy.url, g)
    assert not result.ok
    assert "already personalised" in result.error()["exception_message"]


def _train(server, checkpoint, name, method, lr=1e-2, steps=8):
    r = run(
        server.url,
        labelled_round(
            checkpoint, name, "+ - + - + -", method=method, learning_rate=lr, steps=steps
        ),
    )
    assert r.ok, r.error()
    return export_lora(server, name, "papa_")


def test_exported_lora_in_core_loraloader_samples_like_the_finetune_output(comfy, checkpoint_name):
    lora = _train(comfy, checkpoint_name, "ft-export", "PAPA")
    a, b, base = apply_core_base_latents(
        comfy, lambda g: base_nodes(g, checkpoint_name), "ft-export", lora, "ft_export"
    )
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"


def test_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(comfy, checkpoint_name):
    lora = _train(comfy, checkpoint_name, "ft-gate", "EPAPA")
    k, diffs = epapa_gate_diffs(
        comfy, lambda g: base_nodes(g, checkpoint_name), "ft-gate", lora, "gate"
    )
    assert 0 < k < STEPS
    assert diffs[k] < 1e-3, diffs
    assert diffs[k - 1] > 50 * max(diffs[k], 1e-6) and diffs[k + 1] > 50 * max(diffs[k], 1e-6), (
        diffs
    )


@pytest.mark.parametrize("labels", ["0 0"])
def test_all_skip_feedback_is_refused_with_a_message(comfy, checkpoint_name, labels):
    result = run(comfy.url, labelled_round(checkpoint_name, "ft-skips", labels, steps=1))
    assert not result.ok
    assert "Nothing to train on" in result.error()["exception_message"]
    p = Profile.open(profiles_dir(comfy), "ft-skips", create=False)
    assert p.round == 0 and [h["label"] for h in p.history()] == [0.0, 0.0]


def test_gradient_checkpointing_trains_the_same_adapter(comfy, checkpoint_name):
    for name, ckpt_on in (("ft-ckpt-off", False), ("ft-ckpt-on", True)):
        g = labelled_round(
            checkpoint_name, name, "+ - + -", seed=4, steps=2, gradient_checkpointing=ckpt_on
        )
        assert run(comfy.url, g).ok
    a = Profile.open(profiles_dir(comfy), "ft-ckpt-off", create=False).load_round().adapter
    b = Profile.open(profiles_dir(comfy), "ft-ckpt-on", create=False).load_round().adapter
    # Adam turns last-bit differences of near-zero gradients into full-size steps on a few
    # elements, so compare the adapters as a whole: a broken backward would differ by ~100%.
    # lora_down starts at zero, so its norm is what training moved.
    down = [k for k in a if k.endswith("lora_down.weight")]
    diff = sum((a[k] - b[k]).norm() ** 2 for k in down) ** 0.5
    size = sum(a[k].norm() ** 2 for k in down) ** 0.5
    assert size > 0 and diff / size < 2e-2, (diff, size)


def test_the_largest_seeds_the_widgets_accept_train_two_rounds(comfy, checkpoint_name):
    """Every seed a widget accepts works: the sampler's 2^64 - 1 with several candidates, and the
    Fine-tune node's maximum, round after round (the round seed once overflowed in round 2)."""
    for _ in range(2):
        g = labelled_round(checkpoint_name, "ft-seeds", "+ - +", seed=2**64 - 1, steps=2)
        g.nodes["ft"]["inputs"]["seed"] = 0xFFFFFFFFFFFF
        result = run(comfy.url, g)
        assert result.ok, result.error()
    assert Profile.open(profiles_dir(comfy), "ft-seeds", create=False).round == 2
