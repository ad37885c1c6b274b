"""A workflow saved before PAPA Training Options (PAPA Fine-tune with 15 widgets) still opens:
method, steps and seed keep their values, and the settings that differ from the defaults move
onto a PAPA Training Options node linked to the Fine-tune node (js/papa.js)."""

import json
from pathlib import Path

import pytest
import requests

from harness.browser import open_app

OLD = Path(__file__).parent / "data" / "finetune_before_options.json"
# The old widget order: method, cut, steps, learning_rate, rank, alpha, c_pref, c_sim,
# batch_size, timesteps_per_sample, seed, control, gradient_checkpointing, c_anchor.
OLD_VALUES = ["EPAPA", 0.4, 7, 0.005, 8, 8, 1, 0.3, 8, 2, 1234, "fixed", False, 0]

STATE = """() => {
  const ft = app.graph.nodes.find((n) => n.type === "PAPAFineTune");
  const opts = app.graph.nodes.filter((n) => n.type === "PAPATrainingOptions");
  const optionsSlot = ft.inputs.find((i) => i.name === "options");
  return {
    widgets: Object.fromEntries(ft.widgets.map((w) => [w.name, w.value])),
    inputs: ft.inputs.map((i) => i.name),
    options: opts.map((o) => Object.fromEntries(o.widgets.map((w) => [w.name, w.value]))),
    linked: optionsSlot.link != null &&
      app.graph.links[optionsSlot.link]?.origin_id === opts[0]?.id,
    toasts: [...document.querySelectorAll(".p-toast-message")].map((t) => t.innerText),
    errorToasts: document.querySelectorAll(".p-toast-message-error").length,
  };
}"""


@pytest.fixture(scope="module")
def server(comfy):
    # A fresh user gets the template browser on top of the canvas; mark the tutorial as seen.
    requests.post(comfy.url + "/settings/Comfy.TutorialCompleted", json=True, timeout=10)
    return comfy


def _load(browser, url, values):
    wf = json.loads(OLD.read_text())
    ft = next(n for n in wf["nodes"] if n["type"] == "PAPAFineTune")
    assert len(ft["widgets_values"]) == 14, "the fixture is the old layout"
    ft["widgets_values"] = values
    page, log = open_app(browser, url)
    page.evaluate("async (wf) => { await app.loadGraphData(wf); }", wf)
    page.wait_for_timeout(1000)
    return page, log


@pytest.mark.parametrize("trailing", [14, 13], ids=["with-c_anchor", "before-c_anchor"])
def test_old_finetune_widgets_move_to_a_training_options_node(server, browser, artifacts, trailing):
    page, log = _load(browser, server.url, OLD_VALUES[:trailing])
    try:
        s = page.evaluate(STATE)
        page.screenshot(path=str(artifacts / f"old_workflow_{trailing}.png"))
        assert s["widgets"] == {
            "method": "EPAPA",
            "steps": 7,
            "seed": 1234,
            "control_after_generate": "fixed",
        }
        assert s["inputs"] == ["model", "feedback", "profile", "options", "method", "steps", "seed"]
        assert len(s["options"]) == 1 and s["linked"], s
        assert (s["options"][0]["learning_rate"], s["options"][0]["c_sim"]) == (0.005, 0.3)
        assert s["options"][0]["cut"] == 0.4, "unchanged settings keep the defaults"
        assert s["errorToasts"] == 0
        assert any("PAPA Training Options" in t for t in s["toasts"]), s["toasts"]
        prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
        ft = next(n for n in prompt.values() if n["class_type"] == "PAPAFineTune")
        assert {k: v for k, v in ft["inputs"].items() if not isinstance(v, list)} == {
            "method": "EPAPA",
            "steps": 7,
            "seed": 1234,
        }
        opts = prompt[ft["inputs"]["options"][0]]
        assert opts["class_type"] == "PAPATrainingOptions"
        assert opts["inputs"]["learning_rate"] == 0.005
        ours = [e for e in log.errors if "pageerror" in e or "/extensions/" in e]
        assert ours == [], ours
    finally:
        page.context.close()


def test_old_finetune_at_the_defaults_needs_no_options_node(server, browser):
    wf = json.loads(OLD.read_text())
    values = next(n for n in wf["nodes"] if n["type"] == "PAPAFineTune")["widgets_values"]
    page, _log = _load(browser, server.url, values)
    try:
        s = page.evaluate(STATE)
        assert s["options"] == [] and s["toasts"] == [], s
        assert s["widgets"]["steps"] == values[2] and s["widgets"]["seed"] == values[10]
    finally:
        page.context.close()
