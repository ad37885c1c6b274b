"""Write the workflow templates in workflows/ with the real frontend, exactly as it saves them.

Starts a ComfyUI server with the pack and opens the pinned frontend in Chromium.

    .host/venv/bin/python scripts/build_workflow.py digits
        Build workflows/papa_digits_demo.json (+ .jpg thumbnail) from an API-format graph: the
        frontend's own app.loadApiJson, arranged, with a Note node holding the instructions.
    .host/venv/bin/python scripts/build_workflow.py resave papa_loop_sd15 epapa_loop_sdxl
        Load each workflows/<name>.json with app.loadGraphData and write back what the frontend
        saves for it (thumbnail untouched): after a frontend update, or to repair a file.

The file is what the frontend's "Save" writes: JSON.stringify of app.graph.serialize() (the
workflow store keeps clone(app.graph.serialize()) and saves JSON.stringify of it). The JSON
string crosses to Python, never the object: Playwright turns the serialisation's `undefined`
fields into `null`, which the frontend's zod schema rejects with an "Invalid workflow" alert.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from comfy_papa.core.settings import FinetuneSettings  # noqa: E402

DEFAULTS = FinetuneSettings()
sys.path.insert(0, str(REPO / "tests"))

DIGITS_NOTE = """PAPA digits demo: teach the model which digits you like.

1. Queue (Ctrl+Enter). The Candidate Sampler draws 10 digits from the current model.
2. The picker panel opens: click a digit to cycle like / dislike / skip (or keys 1-9 and 0,
   L, D, S), then Submit (Enter).
3. Fine-tune trains the profile "digits-taste" on everything you labelled so far and the
   KSampler below renders 8 digits with the personalised model.
4. Queue again for the next round. Roll back or reset in the PAPA Profile node.

Runs on the CPU with no download: the model (PAPA Digits Demo Loader) ships with the pack."""


def digits_graph() -> dict:
    return {
        "1": {"class_type": "PAPADigitsDemoLoader", "inputs": {"batch_size": 8}},
        "2": {
            "class_type": "PAPAProfile",
            "inputs": {"name": "digits-taste", "rollback_to_round": -1, "reset": False},
        },
        "3": {
            "class_type": "PAPAApplyProfile",
            "inputs": {"model": ["1", 0], "profile": ["2", 0], "strength": 1.0},
        },
        "4": {
            "class_type": "PAPACandidateSampler",
            "inputs": {
                "model": ["3", 0],
                "positive": ["1", 2],
                "negative": ["1", 2],
                "latent": ["1", 3],
                "count": 10,
                "seed": 0,
                "steps": 20,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "normal",
            },
        },
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 1]}},
        "6": {
            "class_type": "PAPAPreferencePicker",
            "inputs": {
                "images": ["5", 0],
                "candidates": ["4", 1],
                "profile": ["2", 0],
                "timeout": 1800,
                "on_timeout": "fail",
            },
        },
        "7": {
            "class_type": "PAPAFineTune",
            "inputs": {
                "model": ["1", 0],
                "feedback": ["6", 0],
                "profile": ["2", 0],
                "method": "PAPA",
                # The node's own default (core.settings.FinetuneSettings); the finer settings
                # are the defaults too (no PAPA Training Options node).
                "steps": DEFAULTS.steps,
                "seed": 0,
            },
        },
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["7", 0],
                "positive": ["1", 2],
                "negative": ["1", 2],
                "latent_image": ["1", 3],
                "seed": 1,
                "steps": 20,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 1]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }


GRAPHS = {"digits": ("papa_digits_demo", digits_graph, DIGITS_NOTE)}

BUILD_JS = """async ([api, note]) => {
  await window.app.loadApiJson(api, "workflow");
  const g = window.app.graph;
  g.arrange();
  const n = LiteGraph.createNode("Note");
  n.pos = [20, -260]; n.size = [560, 240];
  n.widgets[0].value = note;
  g.add(n);
  window.app.canvas.ds.offset = [40, 300];
  window.app.canvas.ds.scale = 0.7;
  window.app.canvas.setDirty(true, true);
  return JSON.stringify(g.serialize());
}"""

RESAVE_JS = """async (wf) => {
  await window.app.loadGraphData(wf);
  return JSON.stringify(window.app.graph.serialize());
}"""


KEEP_NULL = {"link", "links"}  # a slot's "not connected" is a real null in LiteGraph


def drop_nulls(value):
    """A workflow with its null-valued object keys removed, as JSON.stringify drops `undefined`.

    Only for files written before the JSON string crossed to Python (see the module docstring):
    there every absent field became null, and the frontend would load those nulls into its nodes
    and serialise them again."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None or k in KEEP_NULL}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def write_workflow(stem: str, text: str) -> None:
    wf = json.loads(text)
    (REPO / "workflows" / f"{stem}.json").write_text(json.dumps(wf, indent=1) + "\n")


def main() -> None:
    import requests
    from playwright.sync_api import sync_playwright

    from harness.browser import launch, open_app
    from harness.comfy_server import ComfyServer, make_base_directory

    mode, names = sys.argv[1], sys.argv[2:]
    if mode not in GRAPHS and not (mode == "resave" and names):
        sys.exit(f"usage: build_workflow.py {{{','.join(GRAPHS)}}} | resave NAME...")
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(make_base_directory(Path(tmp), None)).start()
        try:
            # no first-run template browser over the canvas
            requests.post(server.url + "/settings/Comfy.TutorialCompleted", json=True, timeout=10)
            with sync_playwright() as p:
                browser = launch(p)
                page, _log = open_app(browser, server.url)
                if mode == "resave":
                    for stem in names:
                        path = REPO / "workflows" / f"{stem}.json"
                        wf = drop_nulls(json.loads(path.read_text()))
                        write_workflow(stem, page.evaluate(RESAVE_JS, wf))
                        print(f"wrote workflows/{stem}.json")
                    browser.close()
                    return
                stem, build, note = GRAPHS[mode]
                text = page.evaluate(BUILD_JS, [build(), note])
                page.wait_for_timeout(500)
                shot = Path(tmp) / "thumb.png"
                page.screenshot(path=str(shot))
                # What the frontend saves once the file is opened again (DOM widgets sized,
                # widget inputs listed): the file round-trips unchanged, as a template should.
                text = page.evaluate(RESAVE_JS, json.loads(text))
                browser.close()
        finally:
            server.stop()
        from PIL import Image

        Image.open(shot).convert("RGB").resize((700, 450)).save(
            REPO / "workflows" / f"{stem}.jpg", quality=80
        )
    write_workflow(stem, text)
    print(f"wrote workflows/{stem}.json and .jpg")


if __name__ == "__main__":
    main()
