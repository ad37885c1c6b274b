"""Write the workflow templates in workflows/ with the real frontend, exactly as it saves them.

Starts a ComfyUI server with the pack and opens the pinned frontend in Chromium.

    .host/venv/bin/python scripts/build_workflow.py digits
        Build workflows/papa_digits_demo.json from an API-format graph: the frontend's own
        app.loadApiJson, arranged, with a Note node holding the instructions.
    .host/venv/bin/python scripts/build_workflow.py resave papa_loop_sd15 epapa_loop_sdxl
        Load each workflows/<name>.json with app.loadGraphData and write back what the frontend
        saves for it: after a frontend update, or to repair a file.

The thumbnails (workflows/<name>.jpg) are drawn by scripts/make_thumbnails.py, never here.

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

1. Press Run (Ctrl+Enter). The model draws 10 digits and a panel opens over the page.
2. Click a digit once to like it (green tick), twice to dislike it (red cross), three times to
   skip it. Or press its number (1-9, 0 for the tenth), then L, D or S. Press Submit (Enter).
3. The model learns from every digit you marked so far, in the profile "digits-taste".
   PAPA Before / After then shows the same 8 digits drawn by the original model (top row)
   and by your model (bottom row): the bottom row moves towards what you like.
4. Run again for the next round: the new digits come from your model. To undo a round or
   start over, use rollback_to_round or reset on the PAPA Profile node.

Everything runs on this computer's CPU; nothing to download."""


def digits_graph() -> dict:
    return {
        "1": {"class_type": "PAPADigitsDemoLoader", "inputs": {"batch_size": 1}},
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
        # The demo model's own digits above the personalised model's, the same seeds each round
        # (its seed control is "fixed", see FIXED_SEEDS): the artist sees the profile's effect.
        "8": {
            "class_type": "PAPABeforeAfter",
            "inputs": {
                "base_model": ["1", 0],
                "personalised_model": ["7", 0],
                "positive": ["1", 2],
                "negative": ["1", 2],
                "latent": ["1", 3],
                "vae": ["1", 1],
                "count": 8,
                "seed": 0,
                "steps": 20,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "normal",
            },
        },
    }


# Per node type, after the frontend built and arranged the graph: a size, and the value of a
# seed's "control after generate" (the frontend gives every new seed "randomize").
DIGITS_TWEAKS = {"PAPABeforeAfter": {"size": [560, 520], "seed_control": "fixed"}}

GRAPHS = {"digits": ("papa_digits_demo", digits_graph, DIGITS_NOTE, DIGITS_TWEAKS)}

BUILD_JS = """async ([api, note, tweaks]) => {
  await window.app.loadApiJson(api, "workflow");
  const g = window.app.graph;
  g.arrange();
  for (const node of g.nodes) {
    const t = tweaks[node.type];
    if (!t) continue;
    if (t.size) node.setSize(t.size);
    if (t.seed_control) {
      const i = node.widgets.findIndex((w) => w.name === "seed");
      const control = node.widgets[i + 1];
      if (control?.name !== "control_after_generate") throw new Error(node.type + ": no control");
      control.value = t.seed_control;
    }
  }
  const n = LiteGraph.createNode("Note");
  n.pos = [100, -250]; n.size = [600, 200];
  n.widgets[0].value = note;
  g.add(n);
  window.app.canvas.ds.offset = [60, 420];
  window.app.canvas.ds.scale = 0.75;
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
                stem, build, note, tweaks = GRAPHS[mode]
                text = page.evaluate(BUILD_JS, [build(), note, tweaks])
                # What the frontend saves once the file is opened again (DOM widgets sized,
                # widget inputs listed): the file round-trips unchanged, as a template should.
                text = page.evaluate(RESAVE_JS, json.loads(text))
                browser.close()
        finally:
            server.stop()
    write_workflow(stem, text)
    print(f"wrote workflows/{stem}.json (thumbnails: scripts/make_thumbnails.py)")


if __name__ == "__main__":
    main()
