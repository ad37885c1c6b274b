"""PAPA Profile / Apply Profile in a real ComfyUI: re-run on a new round, one-shot rollback."""

import torch
from papa_graphs import base_nodes, labelled_round, sampler_node

from comfy_papa.profile.store import Profile
from harness.graph import Graph, run
from harness.outputs import saved_latent, ui_text

FT = dict(steps=3, learning_rate=5e-3)


def _sample(server, checkpoint, name, rollback=-1, tag="s"):
    g = Graph()
    ckpt, pos, neg, empty = base_nodes(g, checkpoint)
    prof = g.node("PAPAProfile", node_id="prof", name=name, rollback_to_round=rollback, reset=False)
    model = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=1.0)
    cand = sampler_node(g, model[0], pos, neg, empty, count=2, seed=123)
    g.node("SaveLatent", node_id="save", samples=cand[0], filename_prefix=f"profnodes_{tag}")
    r = run(server.url, g)
    assert r.ok, r.error()
    return saved_latent(server, r, "save"), ui_text(r, "prof")


def test_apply_profile_follows_new_rounds_and_rollback_is_applied_once(comfy, checkpoint_name):
    name = "nodes-rollback"
    assert run(comfy.url, labelled_round(checkpoint_name, name, "+ - + -", seed=1, **FT)).ok
    after1, summary = _sample(comfy, checkpoint_name, name, tag="r1")
    assert "round 1" in summary
    assert run(comfy.url, labelled_round(checkpoint_name, name, "- + - +", seed=2, **FT)).ok
    after2, summary = _sample(comfy, checkpoint_name, name, tag="r2")
    assert "round 2" in summary
    assert not torch.equal(after1, after2), (
        "the new round must reach Apply Profile (no stale cache)"
    )

    back, summary = _sample(comfy, checkpoint_name, name, rollback=1, tag="back")
    assert "round 1" in summary
    torch.testing.assert_close(back, after1)
    profile = Profile.open(comfy.base / "models" / "papa_profiles", name, create=False)
    assert list((profile.dir / "archive").rglob("r0002")), "rolled-back round kept in archive"

    # training again from round 1 makes a new round 2, and the unchanged rollback widget does not
    # roll it back again on the next queue
    g = labelled_round(checkpoint_name, name, "+ + - -", seed=3, **FT)
    next(v for v in g.nodes.values() if v["class_type"] == "PAPAProfile")["inputs"][
        "rollback_to_round"
    ] = 1
    assert run(comfy.url, g).ok
    _, summary = _sample(comfy, checkpoint_name, name, rollback=1, tag="again")
    assert "round 2" in summary


def test_invalid_profile_name_is_refused_before_running(comfy, checkpoint_name):
    g = labelled_round(checkpoint_name, "../escape", "+ -", **FT)
    from harness.graph import PromptRefused, queue

    try:
        queue(comfy.url, g)
    except PromptRefused as e:
        assert "Invalid profile name" in str(e.body)
    else:
        raise AssertionError("an invalid profile name must be refused at validation")
    assert not (comfy.base / "models" / "escape").exists()
