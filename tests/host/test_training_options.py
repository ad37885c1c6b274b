"""PAPA Fine-tune's essentials on the node, the finer settings on PAPA Training Options."""

import json

import pytest
import requests
from papa_graphs import labelled_round

from comfy_papa.core.settings import FinetuneSettings
from harness.finetune import NODE_INPUTS, OPTION_INPUTS
from harness.graph import run

D = FinetuneSettings()


@pytest.fixture(scope="module")
def object_info(comfy):
    return requests.get(comfy.url + "/object_info", timeout=30).json()


def _round_settings(server, name: str) -> dict:
    manifest = server.base / "models" / "papa_profiles" / name / "manifest.json"
    return json.loads(manifest.read_text())["settings"]


def test_the_node_shows_method_steps_seed_and_an_optional_options_input(object_info):
    info = object_info["PAPAFineTune"]
    assert info["input_order"]["required"] == ["model", "feedback", "profile", *NODE_INPUTS]
    assert info["input_order"]["optional"] == ["options"]
    assert info["input"]["optional"]["options"][0] == "PAPA_OPTIONS"
    assert info["input"]["required"]["steps"][1]["default"] == D.steps


def test_the_options_node_holds_the_rest_at_the_settings_defaults(object_info):
    info = object_info["PAPATrainingOptions"]
    assert info["output"] == ["PAPA_OPTIONS"]
    assert info["input_order"]["required"] == list(OPTION_INPUTS)
    for name, (_kind, spec) in info["input"]["required"].items():
        assert spec["default"] == getattr(D, name), name
        assert spec.get("tooltip"), f"{name} has no tooltip"
    assert "EPAPA only" in info["input"]["required"]["cut"][1]["tooltip"]


def test_options_reach_the_round_and_absent_options_are_the_defaults(comfy, checkpoint_name):
    # labelled_round wires a PAPA Training Options node (tests/host/papa_graphs.py)
    g = labelled_round(
        checkpoint_name, "opt-set", "+ -", steps=2, rank=2, alpha=3.0, learning_rate=4e-3
    )
    assert any(n["class_type"] == "PAPATrainingOptions" for n in g.nodes.values())
    r = run(comfy.url, g)
    assert r.ok, r.error()
    s = _round_settings(comfy, "opt-set")
    assert (s["rank"], s["alpha"], s["learning_rate"], s["steps"]) == (2, 3.0, 4e-3, 2)
    g = labelled_round(checkpoint_name, "opt-none", "+ -", steps=2)
    opts = next(k for k, n in g.nodes.items() if n["class_type"] == "PAPATrainingOptions")
    del g.nodes[opts]
    del g.nodes["ft"]["inputs"]["options"]
    r = run(comfy.url, g)
    assert r.ok, r.error()
    s = _round_settings(comfy, "opt-none")
    want = {**D.as_dict(), "steps": 2}
    assert {k: s[k] for k in want} == want


def _legacy_round(checkpoint_name, name, **old_inputs):
    """An API-format prompt of before PAPA Training Options: the settings on the node itself."""
    g = labelled_round(checkpoint_name, name, "+ -", steps=2)
    opts = next(k for k, n in g.nodes.items() if n["class_type"] == "PAPATrainingOptions")
    del g.nodes[opts]
    del g.nodes["ft"]["inputs"]["options"]
    g.nodes["ft"]["inputs"].update(old_inputs)
    return g


def test_an_old_api_prompt_with_the_settings_on_the_node_keeps_them(comfy, checkpoint_name):
    g = _legacy_round(checkpoint_name, "opt-legacy", rank=2, c_sim=0.25, batch_size=3)
    r = run(comfy.url, g)
    assert r.ok, r.error()
    s = _round_settings(comfy, "opt-legacy")
    assert (s["rank"], s["c_sim"], s["batch_size"]) == (2, 0.25, 3)


@pytest.mark.parametrize(
    "old, message",
    [
        ({"rank": 0}, "rank (adapter size (rank)) must be between 1 and 256"),
        ({"learning_rate": "fast"}, "learning_rate (learning rate) must be a number"),
        ({"gradient_checkpointing": 1}, "must be true or false"),
        ({"c_sim": ["1", 0]}, "is now set on a PAPA Training Options node"),
    ],
)
def test_an_old_api_prompt_with_a_bad_setting_is_refused_by_name(
    comfy, checkpoint_name, old, message
):
    r = run(comfy.url, _legacy_round(checkpoint_name, "opt-bad", **old))
    assert not r.ok
    assert message in r.error()["exception_message"]
