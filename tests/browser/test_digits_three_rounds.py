"""Issue 14's "done when": the digits template as an artist runs it, three rounds in a row.

Opened from the template browser, every seed's control on "randomize", the profile named, then
three times: Run (Ctrl+Enter), label the candidates with the mouse and the keys, Submit (Enter),
wait for the round to train and the PAPA Before / After grid (the same seeds from the demo model
and from the personalised one) to show on its node. No alert, no error toast or dialog, no page
error, every run succeeds; screenshots of each round in tests/artifacts/.
"""

import io
import json
import time
import uuid

import pytest
import requests
from PIL import Image

from harness.browser import open_app
from harness.picker import cancel, pending

STEM = "papa_digits_demo"
PACK = "comfy-papa"
DIALOG = ".papa-overlay .papa-dialog"
TILES = ".papa-overlay .papa-tile"
NODE_GALLERY = ".papa-picker:not(.papa-overlay .papa-picker)"
BLOCKED_REGISTRY = ("violates the following Content Security Policy", "https://api.comfy.org/")

SEEDS = """() => app.graph.nodes.flatMap((n) => {
  const i = (n.widgets || []).findIndex((w) => w.name === "seed" || w.name === "noise_seed");
  if (i < 0) return [];
  const control = n.widgets[i + 1];
  return [{ node: n.type, seed: n.widgets[i].value,
            control: control?.name === "control_after_generate" ? control.value : null }];
})"""
RANDOMIZE = """() => {
  for (const n of app.graph.nodes) for (const [i, w] of (n.widgets || []).entries()) {
    if ((w.name === "seed" || w.name === "noise_seed")
        && n.widgets[i + 1]?.name === "control_after_generate") {
      n.widgets[i + 1].value = "randomize";
    }
  }
  app.graph.setDirtyCanvas(true, true);
}"""
SET_PROFILE = """(name) => {
  const w = app.graph.nodes.find((n) => n.type === "PAPAProfile").widgets
    .find((w) => w.name === "name");
  w.value = name;
  w.callback?.(name);
}"""
SEEN_PROGRESS = """() => {
  window.__papaProgress = [];
  new MutationObserver(() => {
    for (const e of document.querySelectorAll(".papa-progress-text"))
      window.__papaProgress.push(e.textContent);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""
SET_WIDGETS = """(values) => {
  for (const node of app.graph.nodes) {
    for (const [name, value] of Object.entries(values[node.type] || {})) {
      node.widgets.find((w) => w.name === name).value = value;
    }
  }
  app.graph.setDirtyCanvas(true, true);
}"""
FAST = {
    "PAPACandidateSampler": {"steps": 8},
    "PAPAFineTune": {"steps": 4},
    "PAPABeforeAfter": {"steps": 8, "count": 4},
}
BEFORE_AFTER = "PAPABeforeAfter"
# The grid on the Before / After node, once its image has loaded: its natural size, or null.
SHOWN_GRID = """() => {
  const node = app.graph.nodes.find((n) => n.type === "PAPABeforeAfter");
  const img = node.imgs?.[0];
  return img && img.complete && img.naturalWidth > 0
    ? { src: img.src, width: img.naturalWidth, height: img.naturalHeight } : null;
}"""
SHOW_GRID = """() => {
  const node = app.graph.nodes.find((n) => n.type === "PAPABeforeAfter");
  app.canvas.ds.scale = 1;
  app.canvas.centerOnNode(node);
  app.canvas.setDirty(true, true);
}"""
PROBLEMS = """() => ({
  toasts: [...document.querySelectorAll(".p-toast-message-error, .p-toast-message-warn")]
    .map((t) => t.innerText),
  dialogs: [...document.querySelectorAll(".p-dialog, [role=alertdialog]")]
    .filter((d) => !d.closest(".papa-overlay")).map((d) => d.innerText),
})"""

# Each round's labels, as a person gives them: ("click", tile) cycles like -> dislike -> skip;
# ("key", k) presses a key (1-9 and 0 pick a candidate; l, d, s label it).
ROUNDS = [
    [("click", 0), ("click", 1), ("click", 1), ("key", "4"), ("key", "l"), ("key", "0"),
     ("key", "d")],
    [("key", "2"), ("key", "l"), ("key", "3"), ("key", "l"), ("click", 5), ("click", 5),
     ("key", "7"), ("key", "d"), ("key", "s")],
    [("click", 8), ("key", "1"), ("key", "d"), ("key", "6"), ("key", "l"), ("click", 2)],
]  # fmt: skip
EXPECTED = [
    {0: "liked", 1: "disliked", 3: "liked", 9: "disliked"},
    {1: "liked", 2: "liked", 5: "disliked", 6: "skipped"},
    {8: "liked", 0: "disliked", 5: "liked", 2: "liked"},
]


@pytest.fixture(scope="module")
def server(comfy):
    requests.post(comfy.url + "/settings/Comfy.TutorialCompleted", json=True, timeout=10)
    return comfy


def _runs(url: str, profile: str) -> list[dict]:
    """The finished runs whose PAPAProfile node used `profile`, oldest first."""
    out = []
    for entry in requests.get(url + "/history", timeout=10).json().values():
        named = any(n["inputs"].get("name") == profile for n in entry["prompt"][2].values())
        if named and entry.get("status", {}).get("completed") is not None:
            out.append(entry)
    return sorted(out, key=lambda e: e["prompt"][0])


def _wait_runs(url: str, profile: str, n: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _runs(url, profile)
        if len(runs) >= n:
            return runs
        time.sleep(0.5)
    raise TimeoutError(f"run {n} for profile {profile} did not finish in {timeout:.0f} s")


def _grid(url: str, run: dict) -> tuple[str, Image.Image]:
    """The run's Before / After grid (demo model above, personalised model below): its file
    name and the picture."""
    nodes = run["prompt"][2]
    node_id = next(k for k, n in nodes.items() if n["class_type"] == BEFORE_AFTER)
    [image] = run["outputs"][node_id]["images"]
    r = requests.get(url + "/view", params=image, timeout=30)
    r.raise_for_status()
    return image["filename"], Image.open(io.BytesIO(r.content)).convert("RGB")


def _open_template(page) -> None:
    page.locator(".comfy-menu-button-wrapper").click()
    page.get_by_role("menuitem", name="Browse Templates").click()
    page.get_by_role("button", name=PACK, exact=True).click()
    page.locator(f"[data-testid=template-workflow-{STEM}]").click()
    page.wait_for_function(
        "() => app.graph.nodes.some((n) => n.type === 'PAPAFineTune') "
        "&& !document.querySelector('.p-dialog')",
        timeout=30_000,
    )


def test_three_rounds_of_the_digits_template_with_randomized_seeds(server, browser, artifacts):
    profile = f"digits-{uuid.uuid4().hex[:6]}"
    page, log = open_app(browser, server.url)
    native: list[str] = []

    def on_dialog(d):
        native.append(f"{d.type}: {d.message}")
        d.dismiss()

    page.on("dialog", on_dialog)
    cid = page.evaluate("() => sessionStorage.getItem('clientId') || app.api.clientId")
    try:
        page.wait_for_timeout(1000)
        start = len(log.errors)
        _open_template(page)
        # As shipped, Before / After keeps its seed: the same digits before and after each round.
        shipped = {s["node"]: s["control"] for s in page.evaluate(SEEDS)}
        assert shipped[BEFORE_AFTER] == "fixed", shipped
        page.evaluate(RANDOMIZE)
        seeds = page.evaluate(SEEDS)
        assert {s["node"] for s in seeds} == {"PAPACandidateSampler", "PAPAFineTune", BEFORE_AFTER}
        assert all(s["control"] == "randomize" for s in seeds), seeds
        page.evaluate(SET_PROFILE, profile)
        # Fewer sampling and training steps than the template ships (the test's runtime on two
        # shared CPU cores), set in the widgets as an artist would.
        page.evaluate(SET_WIDGETS, FAST)
        page.evaluate(SEEN_PROGRESS)
        used_seeds = []
        for k, (actions, expected) in enumerate(zip(ROUNDS, EXPECTED, strict=True), 1):
            # Run, as a person does: Ctrl+Enter over the canvas.
            page.locator("#graph-canvas").click(position={"x": 700, "y": 800})
            page.keyboard.press("Control+Enter")
            page.wait_for_selector(DIALOG, timeout=180_000)
            tiles = page.locator(TILES)
            assert tiles.count() == 10
            page.wait_for_function(
                "(sel) => [...document.querySelectorAll(sel)].every((i) => i.complete)",
                arg=f"{TILES} img",
            )
            for kind, what in actions:
                if kind == "click":
                    tiles.nth(what).click()
                else:
                    page.keyboard.press(what)
            got = {i: tiles.nth(i).get_attribute("aria-label").split(": ")[1] for i in range(10)}
            assert {i: v for i, v in got.items() if v != "not labelled"} == expected, got
            page.screenshot(path=str(artifacts / f"digits_round{k}_labels.png"))
            submitted = time.monotonic()
            page.keyboard.press("Enter")
            page.wait_for_selector(".papa-overlay", state="detached", timeout=30_000)
            runs = _wait_runs(server.url, profile, k, timeout=600)
            trained_in = time.monotonic() - submitted
            assert [r["status"]["status_str"] for r in runs] == ["success"] * k, runs[-1]
            print(f"round {k}: Submit to trained and Before / After drawn in {trained_in:.1f} s")
            # This run's Before / After grid, shown 4x (128 px digits): two rows of `count`
            # digits, 16 px apart, and it shows on its node on the canvas.
            name, grid = _grid(server.url, runs[-1])
            count = FAST[BEFORE_AFTER]["count"]
            assert grid.size == (count * 144 - 16, 2 * 144 - 16), grid.size
            before, after = grid.crop((0, 0, grid.width, 128)), grid.crop((0, 144, grid.width, 272))
            assert before.tobytes() != after.tobytes(), "the trained model drew the same digits"
            grid.save(artifacts / f"digits_round{k}_before_after.png")
            page.evaluate(SHOW_GRID)
            try:
                page.wait_for_function(
                    f"(name) => ({SHOWN_GRID})()?.src.includes(encodeURIComponent(name))",
                    arg=name,
                    timeout=30_000,
                )
            except Exception as e:
                raise AssertionError(f"{name} not on the node: {page.evaluate(SHOWN_GRID)}") from e
            page.screenshot(path=str(artifacts / f"digits_round{k}_trained.png"))
            problems = page.evaluate(PROBLEMS)
            assert problems == {"toasts": [], "dialogs": []}, problems
            used_seeds.append(
                {
                    n["class_type"]: n["inputs"].get("seed", n["inputs"].get("noise_seed"))
                    for n in runs[-1]["prompt"][2].values()
                    if "seed" in n["inputs"] or "noise_seed" in n["inputs"]
                }
            )
        manifest = server.base / "models" / "papa_profiles" / profile / "manifest.json"
        assert json.loads(manifest.read_text())["round"] == 3
        # "randomize" gave every seed a new value each run.
        for node in used_seeds[0]:
            values = [s[node] for s in used_seeds]
            assert len(set(values)) == 3, (node, values)
        seen = page.evaluate("() => window.__papaProgress")
        assert any("learning from" in t for t in seen), seen[-5:]
        assert native == []
        errors = [e for e in log.errors[start:] if not all(p in e for p in BLOCKED_REGISTRY)]
        assert errors == [], errors
    finally:
        for req in pending(server.url, cid):  # a failed test leaves no picker waiting
            cancel(server.url, req["request_id"])
        page.context.close()
