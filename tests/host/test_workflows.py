"""Every workflows/*.json type-checks against the real server; the SD1.5 loop runs end to end."""

import json
import uuid

import pytest
import requests

from harness.browser import open_app
from harness.graph import queue, wait
from harness.paths import REPO
from harness.picker import answer, history, wait_pending

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}


@pytest.fixture(scope="module")
def object_info(comfy):
    return requests.get(comfy.url + "/object_info", timeout=30).json()


def _inputs(info: dict) -> dict[str, list]:
    return {**info["input"].get("required", {}), **info["input"].get("optional", {})}


def _expected_widget_values(info: dict) -> int:
    """Widgets the frontend makes for a node: one per widget input, +1 for a seed's control."""
    n = 0
    for name, spec in _inputs(info).items():
        kind = "COMBO" if isinstance(spec[0], list) else spec[0]
        opts = spec[1] if len(spec) > 1 else {}
        if kind not in WIDGET_TYPES or opts.get("forceInput"):
            continue
        n += 1
        if kind == "INT" and (opts.get("control_after_generate") or name in SEED_NAMES):
            n += 1
    return n


def test_there_are_example_workflows():
    names = {p.stem for p in WORKFLOWS}
    assert {"papa_loop_sd15", "epapa_loop_sdxl"} <= names
    for p in WORKFLOWS:
        assert p.with_suffix(".jpg").exists(), f"{p.name} has no thumbnail"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_type_checks_against_object_info(path, object_info):
    wf = json.loads(path.read_text())
    assert {"nodes", "links", "version"} <= wf.keys()
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert any(n["type"] == "Note" for n in nodes.values()), "each workflow explains itself"
    for n in nodes.values():
        if n["type"] in FRONTEND_ONLY:
            continue
        assert n["type"] in object_info, f"{path.name}: unknown node type {n['type']}"
        want = _expected_widget_values(object_info[n["type"]])
        got = len(n.get("widgets_values") or [])
        assert got == want, f"{path.name}: {n['type']} has {got} widget values, expected {want}"
    linked = set()
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        a, b = nodes[src], nodes[dst]
        out_type = object_info[a["type"]]["output"][src_slot]
        input_name = b["inputs"][dst_slot]["name"]
        spec = _inputs(object_info[b["type"]]).get(input_name)
        assert spec is not None, f"{path.name}: {b['type']} has no input {input_name}"
        in_type = "COMBO" if isinstance(spec[0], list) else spec[0]
        assert out_type == kind == in_type, (
            f"{path.name} link {link_id}: {a['type']}[{src_slot}] {out_type} -> "
            f"{b['type']}.{input_name} {in_type} (link says {kind})"
        )
        linked.add((dst, input_name))
    for n in nodes.values():
        if n["type"] in FRONTEND_ONLY:
            continue
        for name, spec in object_info[n["type"]]["input"].get("required", {}).items():
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            if kind not in WIDGET_TYPES:
                assert (n["id"], name) in linked, f"{path.name}: {n['type']}.{name} is unlinked"


def _set_inputs(prompt: dict, class_type: str, **values) -> None:
    hits = [n for n in prompt.values() if n["class_type"] == class_type]
    assert hits, f"no {class_type} in the prompt"
    for n in hits:
        n["inputs"].update(values)


def test_sd15_loop_runs_on_the_tiny_checkpoint_answered_over_http(comfy, browser):
    """Converted to API format by the frontend itself (app.graphToPrompt), then queued over HTTP."""
    wf = json.loads((REPO / "workflows" / "papa_loop_sd15.json").read_text())
    page, _ = open_app(browser, comfy.url)
    try:
        page.evaluate("async (wf) => { await app.loadGraphData(wf); }", wf)
        prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    finally:
        page.context.close()
    name = f"wf-{uuid.uuid4().hex[:8]}"
    _set_inputs(prompt, "PAPAProfile", name=name)
    _set_inputs(prompt, "PAPACandidateSampler", count=3, steps=2)
    _set_inputs(prompt, "PAPAFineTune", steps=2, batch_size=3, timesteps_per_sample=1)
    _set_inputs(prompt, "KSampler", steps=2)
    client = uuid.uuid4().hex
    prompt_id = queue(comfy.url, prompt, client)
    req = wait_pending(comfy.url, client, timeout=180)
    r = answer(comfy.url, req["request_id"], ["like", "dislike", "like"])
    assert r.status_code == 200, r.text
    result = wait(comfy.url, prompt_id, timeout=300)
    assert result.ok, result.error()
    saved = [o for o in result.outputs.values() if o.get("images")]
    assert saved, f"no image output: {result.outputs}"
    rows = history(comfy.base, name)
    assert [row["label"] for row in rows] == [1.0, -1.0, 1.0]
    manifest = comfy.base / "models" / "papa_profiles" / name / "manifest.json"
    manifest = json.loads(manifest.read_text())
    assert manifest["round"] == 1, "the fine-tune committed round 1"


def test_digits_template_shows_before_and_after_with_the_same_seeds():
    """After each round the artist sees the demo model's digits above the personalised model's
    for the same seeds: Before / After takes the loader's MODEL as the base, Fine-tune's MODEL as
    the personalised one, and keeps its seed fixed from round to round."""
    wf = json.loads((REPO / "workflows" / "papa_digits_demo.json").read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    links = {link[0]: link for link in wf["links"]}
    [compare] = [n for n in nodes.values() if n["type"] == "PAPABeforeAfter"]

    def source(name: str) -> tuple[str, int]:
        [slot] = [i for i in compare["inputs"] if i["name"] == name]
        _, src, src_slot, _, _, _ = links[slot["link"]]
        return nodes[src]["type"], src_slot

    assert source("base_model") == ("PAPADigitsDemoLoader", 0)
    assert source("personalised_model") == ("PAPAFineTune", 0)
    assert source("vae") == ("PAPADigitsDemoLoader", 1)
    assert source("latent") == ("PAPADigitsDemoLoader", 3)
    count, seed, control, steps, cfg, *_ = compare["widgets_values"]
    assert (control, cfg) == ("fixed", 1.0)
    assert 4 <= count <= 10
    note = next(n for n in nodes.values() if n["type"] == "Note")["widgets_values"][0]
    assert "Before / After" in note
