"""PAPA Fine-tune in a real ComfyUI: a round commits to the profile, outputs behave as promised."""

import json

import pytest
import torch
from papa_graphs import base_nodes, labelled_round

from comfy_papa.profile.store import Profile
from harness.graph import Graph, run
from harness.outputs import saved_latent, ui_text

STEPS = 8


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
    g = Graph()
    prof = g.node("PAPAProfile", name=name, rollback_to_round=-1, reset=False)
    g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename="papa_")
    r = run(server.url, g)
    assert r.ok, r.error()
    return json.loads(ui_text(r, "export"))["lora"]


def _ksampler(g, model, pos, neg, empty, seed, **kw):
    args = dict(noise_seed=seed, steps=STEPS, cfg=1.0, sampler_name="euler", scheduler="normal")
    args.update(kw)
    return g.node(
        "KSamplerAdvanced",
        model=model,
        positive=pos[0],
        negative=neg[0],
        latent_image=empty[0],
        **args,
    )


def test_exported_lora_in_core_loraloader_samples_like_the_finetune_output(comfy, checkpoint_name):
    lora = _train(comfy, checkpoint_name, "ft-export", "PAPA")
    g = Graph()
    ckpt, pos, neg, empty = base_nodes(g, checkpoint_name)
    prof = g.node("PAPAProfile", name="ft-export", rollback_to_round=-1, reset=False)
    mine = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=1.0)
    core = g.node("LoraLoaderModelOnly", model=ckpt[0], lora_name=lora, strength_model=1.0)
    common = dict(
        add_noise="enable", start_at_step=0, end_at_step=10000, return_with_leftover_noise="disable"
    )
    for tag, model in (("mine", mine[0]), ("core", core[0]), ("base", ckpt[0])):
        ks = _ksampler(g, model, pos, neg, empty, 11, **common)
        g.node("SaveLatent", node_id=tag, samples=ks[0], filename_prefix=f"ft_export_{tag}")
    r = run(comfy.url, g)
    assert r.ok, r.error()
    a, b, base = (saved_latent(comfy, r, t) for t in ("mine", "core", "base"))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - base).abs().max() > 1e-3, "the adapter must change the samples"


def _gate_steps(steps: int, cut: float = 0.4, table: int = 1000) -> int:
    """How many steps of ComfyUI's 'normal' schedule sit at timestep >= cut*T, i.e. sigma >= cut.

    The normal schedule visits timesteps linspace(T-1, 0, steps); sigma grows with the timestep.
    """
    ts = torch.linspace(table - 1, 0, steps)
    return int((ts >= int(cut * table)).sum())


def test_epapa_adapter_is_on_exactly_at_the_steps_above_the_cut(comfy, checkpoint_name):
    lora = _train(comfy, checkpoint_name, "ft-gate", "EPAPA")
    k = _gate_steps(STEPS)
    assert 0 < k < STEPS
    strength = 3.0  # amplify the adapter so one step with or without it is clearly visible
    g = Graph()
    ckpt, pos, neg, empty = base_nodes(g, checkpoint_name)
    prof = g.node("PAPAProfile", name="ft-gate", rollback_to_round=-1, reset=False)
    gated = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=strength)
    always = g.node("LoraLoaderModelOnly", model=ckpt[0], lora_name=lora, strength_model=strength)
    full = _ksampler(
        g,
        gated[0],
        pos,
        neg,
        empty,
        5,
        add_noise="enable",
        start_at_step=0,
        end_at_step=10000,
        return_with_leftover_noise="disable",
    )
    g.node("SaveLatent", node_id="full", samples=full[0], filename_prefix="gate_full")
    for split in (k - 1, k, k + 1):
        head = _ksampler(
            g,
            always[0],
            pos,
            neg,
            empty,
            5,
            add_noise="enable",
            start_at_step=0,
            end_at_step=split,
            return_with_leftover_noise="enable",
        )
        tail = g.node(
            "KSamplerAdvanced",
            model=ckpt[0],
            add_noise="disable",
            noise_seed=5,
            steps=STEPS,
            cfg=1.0,
            sampler_name="euler",
            scheduler="normal",
            positive=pos[0],
            negative=neg[0],
            latent_image=head[0],
            start_at_step=split,
            end_at_step=10000,
            return_with_leftover_noise="disable",
        )
        g.node(
            "SaveLatent",
            node_id=f"split{split}",
            samples=tail[0],
            filename_prefix=f"gate_split{split}",
        )
    r = run(comfy.url, g)
    assert r.ok, r.error()
    full_lat = saved_latent(comfy, r, "full")
    diffs = {
        s: (saved_latent(comfy, r, f"split{s}") - full_lat).abs().max().item()
        for s in (k - 1, k, k + 1)
    }
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
