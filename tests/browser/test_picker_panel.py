"""The picker panel in real Chromium: label with mouse and keyboard, reload, two tabs."""

import json
import re
import time
import uuid

import pytest
import requests

from harness.browser import open_app
from harness.graph import queue, wait
from harness.paths import REPO
from harness.picker import answer, cancel, history, pending, picker_graph

DIALOG = ".papa-overlay .papa-dialog"
TILES = ".papa-overlay .papa-tile"
NODE_GALLERY = ".papa-picker:not(.papa-overlay .papa-picker)"

SET_WIDGETS = """(values) => {
  for (const node of app.graph.nodes) {
    for (const [name, value] of Object.entries(values[node.type] || {})) {
      node.widgets.find((w) => w.name === name).value = value;
    }
  }
}"""


@pytest.fixture(scope="module")
def server(comfy):
    # A fresh user gets the template browser on top of the canvas; mark the tutorial as seen.
    requests.post(comfy.url + "/settings/Comfy.TutorialCompleted", json=True, timeout=10)
    return comfy


def _client_id(page) -> str:
    page.wait_for_function("() => !!window.app.api?.clientId || !!sessionStorage.clientId")
    return page.evaluate("() => sessionStorage.getItem('clientId')")


def _history_entry(url: str, profile: str, timeout: float = 300.0) -> dict:
    """The finished run whose PAPAProfile node used `profile`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in requests.get(url + "/history", timeout=10).json().values():
            nodes = entry["prompt"][2].values()
            named = any(n["inputs"].get("name") == profile for n in nodes)
            if named and entry.get("status", {}).get("completed") is not None:
                return entry
        time.sleep(0.5)
    raise TimeoutError(f"no finished run for profile {profile}")


def _cancel_left_over(url: str, client_id: str) -> None:
    """A failed test must not leave the shared server's queue paused at a picker."""
    for req in pending(url, client_id):
        cancel(url, req["request_id"])


def _page_papa_errors(log) -> list[str]:
    """Errors from our module or our routes (the frontend's own api.comfy.org lookups aside)."""
    return [e for e in log.errors if "papa_picker" in e or "/papa/" in e]


def test_loop_workflow_labelled_with_mouse_and_keyboard_trains_the_profile(
    server, browser, artifacts
):
    wf = json.loads((REPO / "workflows" / "papa_loop_sd15.json").read_text())
    name = f"ui-{uuid.uuid4().hex[:8]}"
    page, log = open_app(browser, server.url)
    cid = _client_id(page)
    try:
        page.evaluate("async (wf) => { await app.loadGraphData(wf); }", wf)
        values = {
            "PAPAProfile": {"name": name},
            "PAPACandidateSampler": {"count": 3, "steps": 2},
            "PAPAFineTune": {"steps": 2},
            "KSampler": {"steps": 2},
        }
        page.evaluate(SET_WIDGETS, values)
        page.evaluate("async () => { await app.queuePrompt(0, 1); }")
        page.wait_for_selector(DIALOG, timeout=180_000)
        tiles = page.locator(TILES)
        assert tiles.count() == 3
        assert page.locator(f"{DIALOG} .papa-submit").is_disabled()
        assert f"Profile {name}" in page.locator(f"{DIALOG} .papa-head").inner_text()

        tiles.nth(0).click()  # like
        tiles.nth(1).click()
        tiles.nth(1).click()  # like -> dislike
        page.keyboard.press("3")
        page.keyboard.press("l")  # like
        page.keyboard.press("3")
        page.keyboard.press("d")  # changed mind: dislike
        page.keyboard.press("s")  # ...and skip it after all
        page.keyboard.press("l")  # no: like
        page.keyboard.press(" ")
        assert page.locator(".papa-overlay .papa-zoom .papa-big").count() == 1
        page.keyboard.press(" ")
        assert page.locator(".papa-overlay .papa-grid").count() == 1

        labels = [tiles.nth(i).get_attribute("aria-label") for i in range(3)]
        assert [lab.split(": ")[1] for lab in labels] == ["liked", "disliked", "liked"]
        badges = page.locator(".papa-overlay .papa-badge").all_inner_texts()
        assert badges == ["\u2713", "\u2717", "\u2713"]
        # The node's own gallery is a view of the same state.
        node_tiles = page.locator(f"{NODE_GALLERY} .papa-tile")
        assert node_tiles.count() == 3
        assert page.locator(f"{NODE_GALLERY} .papa-dislike").count() == 1
        assert not page.locator(f"{DIALOG} .papa-submit").is_disabled()
        page.locator(DIALOG).screenshot(path=str(artifacts / "picker_panel.png"))

        page.keyboard.press("Enter")
        page.wait_for_selector(".papa-overlay", state="detached", timeout=30_000)
        # The panel closes at once and says "Sending…" until the server's answer arrives.
        page.wait_for_function(
            "(sel) => (document.querySelector(sel)?.innerText || '').includes('Saved')",
            arg=f"{NODE_GALLERY} .papa-msg",
            timeout=30_000,
        )
        entry = _history_entry(server.url, name)
        assert entry["status"]["status_str"] == "success", entry["status"]
        # The fine-tune reported its progress to the panel while it trained.
        page.wait_for_selector(f"{NODE_GALLERY} .papa-progress-text", timeout=30_000)
        assert "step" in page.locator(f"{NODE_GALLERY} .papa-progress-text").inner_text()
        assert not _page_papa_errors(log), log.errors
    finally:
        _cancel_left_over(server.url, cid)
        page.context.close()
    rows = history(server.base, name)
    assert [r["label"] for r in rows] == [1.0, -1.0, 1.0]
    manifest = server.base / "models" / "papa_profiles" / name / "manifest.json"
    assert json.loads(manifest.read_text())["round"] == 1


def test_reload_while_waiting_shows_the_request_again_and_the_answer_is_accepted(
    server, checkpoint_name, browser
):
    page, log = open_app(browser, server.url)
    cid = _client_id(page)
    try:
        graph = picker_graph(checkpoint_name, count=2, seed=71)
        prompt_id = queue(server.url, graph.prompt(), cid)
        page.wait_for_selector(DIALOG, timeout=120_000)
        page.reload(wait_until="domcontentloaded")
        page.wait_for_function("() => window.app && window.app.graph", timeout=60_000)
        assert _client_id(page) == cid, "the frontend keeps its client id across a reload"
        page.wait_for_selector(DIALOG, timeout=30_000)
        page.locator(TILES).nth(1).click()
        page.locator(f"{DIALOG} .papa-submit").click()
        page.wait_for_selector(".papa-overlay", state="detached", timeout=30_000)
        result = wait(server.url, prompt_id, 60)
        assert result.ok, result.error()
        labels = list(result.outputs["picker"]["papa_feedback"][0]["labels"].values())
        assert labels == ["skip", "like"]
        assert not _page_papa_errors(log), log.errors
    finally:
        _cancel_left_over(server.url, cid)
        page.context.close()


def test_only_the_queuing_tab_shows_the_request_and_a_stale_id_is_refused(
    server, checkpoint_name, browser
):
    tab_a, log_a = open_app(browser, server.url)
    tab_b, log_b = open_app(browser, server.url)
    cid_a, cid_b = _client_id(tab_a), _client_id(tab_b)
    try:
        assert cid_a != cid_b
        graph = picker_graph(checkpoint_name, count=2, seed=81)
        prompt_id = queue(server.url, graph.prompt(), cid_a)
        tab_a.wait_for_selector(DIALOG, timeout=120_000)
        rid = pending(server.url, cid_a)[0]["request_id"]
        assert pending(server.url, cid_b) == []
        tab_b.reload(wait_until="domcontentloaded")  # B asks /papa/pending on load: still nothing
        tab_b.wait_for_function("() => window.app && window.app.graph", timeout=60_000)
        tab_b.wait_for_timeout(1500)
        assert tab_b.locator(".papa-overlay").count() == 0
        # B's client id can neither answer nor cancel A's request; A's tab still answers it.
        stolen = answer(server.url, rid, ["like", "like"], client_id=cid_b)
        assert stolen.status_code == 403 and "another client" in stolen.json()["error"]
        assert cancel(server.url, rid, client_id=cid_b).status_code == 403
        tab_a.keyboard.press("1")
        tab_a.keyboard.press("d")
        tab_a.keyboard.press("Enter")
        tab_a.wait_for_selector(".papa-overlay", state="detached", timeout=30_000)
        assert wait(server.url, prompt_id, 60).ok
        stale = answer(server.url, rid, ["like", "like"])
        assert stale.status_code == 409 and rid in stale.json()["error"]
        assert tab_b.locator(".papa-overlay").count() == 0
        assert not _page_papa_errors(log_a) and not _page_papa_errors(log_b)
    finally:
        _cancel_left_over(server.url, cid_a)
        tab_a.context.close()
        tab_b.context.close()


def _sized_picker_graph(checkpoint: str, size: int, **kwargs) -> dict:
    prompt = picker_graph(checkpoint, **kwargs).prompt()
    for node in prompt.values():
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"].update(width=size, height=size)
    return prompt


def test_ten_candidates_key_0_word_counts_and_pixel_sharp_small_images(
    server, checkpoint_name, browser, artifacts
):
    page, log = open_app(browser, server.url)
    cid = _client_id(page)
    try:
        prompt_id = queue(server.url, _sized_picker_graph(checkpoint_name, 64, count=10), cid)
        page.wait_for_selector(DIALOG, timeout=180_000)
        tiles = page.locator(TILES)
        assert tiles.count() == 10
        page.keyboard.press("0")  # the 10th candidate's key
        assert tiles.nth(9).get_attribute("class").split().count("papa-selected") == 1
        page.keyboard.press("l")
        page.keyboard.press("2")
        page.keyboard.press("d")
        page.keyboard.press("3")
        page.keyboard.press("s")
        assert tiles.nth(9).get_attribute("aria-label").endswith(": liked")
        head = page.locator(f"{DIALOG} .papa-head").inner_text()
        assert "In total 1 liked \u00b7 1 disliked" in head, head
        assert "This round 1 liked \u00b7 1 disliked \u00b7 1 skipped" in head, head
        assert "\u2013" not in head and "\u2717" not in head, head  # no "✗ 4 – 2"
        # 64 px candidates are shown pixel-sharp, not smoothed.
        page.wait_for_function(
            "(sel) => [...document.querySelectorAll(sel)].every((i) => i.complete)",
            arg=f"{TILES} img",
        )
        rendering = page.eval_on_selector_all(
            f"{TILES} img", "(imgs) => imgs.map((i) => getComputedStyle(i).imageRendering)"
        )
        assert rendering == ["pixelated"] * 10, rendering
        page.locator(DIALOG).screenshot(path=str(artifacts / "picker_ten_candidates.png"))
        page.keyboard.press("Enter")
        page.wait_for_selector(".papa-overlay", state="detached", timeout=30_000)
        result = wait(server.url, prompt_id, 60)
        assert result.ok, result.error()
        labels = list(result.outputs["picker"]["papa_feedback"][0]["labels"].values())
        assert labels == ["skip", "dislike", "skip"] + ["skip"] * 6 + ["like"]

        # 128 px and larger images keep the browser's smooth scaling.
        prompt_id = queue(server.url, _sized_picker_graph(checkpoint_name, 128, count=2), cid)
        page.wait_for_selector(DIALOG, timeout=180_000)
        page.wait_for_function(
            "(sel) => [...document.querySelectorAll(sel)].every((i) => i.complete)",
            arg=f"{TILES} img",
        )
        rendering = page.eval_on_selector_all(
            f"{TILES} img", "(imgs) => imgs.map((i) => getComputedStyle(i).imageRendering)"
        )
        assert rendering == ["auto", "auto"], rendering
        page.keyboard.press("0")  # no 10th candidate: nothing happens
        assert page.locator(f"{TILES}.papa-selected").get_attribute("data-index") == "0"
        page.keyboard.press("l")
        page.keyboard.press("Enter")
        page.wait_for_selector(".papa-overlay", state="detached", timeout=30_000)
        assert wait(server.url, prompt_id, 60).ok
        assert not _page_papa_errors(log), log.errors
    finally:
        _cancel_left_over(server.url, cid)
        page.context.close()


PROGRESS_TEXT = ".papa-progress-text"
SEEN_PROGRESS = """() => {
  window.__papaProgress = [];
  new MutationObserver(() => {
    for (const e of document.querySelectorAll(".papa-progress-text"))
      window.__papaProgress.push(e.textContent);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


def _load_loop(page, profile: str) -> None:
    wf = json.loads((REPO / "workflows" / "papa_loop_sd15.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf); }", wf)
    values = {
        "PAPAProfile": {"name": profile},
        "PAPACandidateSampler": {"count": 2, "steps": 2},
        "PAPAFineTune": {"steps": 2},
        "KSampler": {"steps": 2},
    }
    page.evaluate(SET_WIDGETS, values)


def test_training_progress_stays_with_its_own_tab_round_and_profile(server, browser, artifacts):
    """A finished round's "step 2/2" is not shown in another tab's panel (another profile), is
    gone when the next round's candidates arrive, and a failed round says it was not trained."""
    tab_a, log_a = open_app(browser, server.url)
    tab_b, log_b = open_app(browser, server.url)
    cid_a = _client_id(tab_a)
    name_a, name_b = (f"prog-{uuid.uuid4().hex[:8]}" for _ in range(2))
    try:
        _load_loop(tab_a, name_a)
        _load_loop(tab_b, name_b)  # B shows its own picker node's gallery, and never runs

        # Round 1 in A trains: A's node shows the training progress, B's does not.
        tab_a.evaluate("async () => { await app.queuePrompt(0, 1); }")
        tab_a.wait_for_selector(DIALOG, timeout=180_000)
        tab_a.evaluate(SEEN_PROGRESS)  # every progress text the page shows from now on
        tab_a.keyboard.press("l")
        tab_a.keyboard.press("Enter")
        entry = _history_entry(server.url, name_a)
        assert entry["status"]["status_str"] == "success", entry["status"]
        tab_a.wait_for_selector(f"{NODE_GALLERY} {PROGRESS_TEXT}", timeout=30_000)
        text = tab_a.locator(f"{NODE_GALLERY} {PROGRESS_TEXT}").inner_text()
        assert "step 2/2" in text and name_a in text and "left" not in text, text
        # Mid-round the panel said how long the rest would take, from the round's own pace.
        seen = tab_a.evaluate("() => window.__papaProgress")
        assert any(re.search(r"step 1/2 \u00b7 about \d+ s left", t) for t in seen), seen
        assert tab_b.locator(NODE_GALLERY).count() == 1  # B's picker node shows its gallery
        assert tab_b.locator(PROGRESS_TEXT).count() == 0, "another tab's training shows in B"

        # Round 2: no stale bar when the new candidates arrive; then Fine-tune refuses its MODEL
        # (wired to the personalised one) and the panel says the round was not trained.
        tab_a.evaluate(
            """() => {
              const by = (t) => app.graph.nodes.find((n) => n.type === t);
              by("PAPAApplyProfile").connect(0, by("PAPAFineTune"), 0);
            }"""
        )
        tab_a.evaluate("async () => { await app.queuePrompt(0, 1); }")
        tab_a.wait_for_selector(DIALOG, timeout=180_000)
        assert tab_a.locator(PROGRESS_TEXT).count() == 0, "round 1's progress carried over"
        tab_a.keyboard.press("d")
        tab_a.keyboard.press("Enter")
        tab_a.wait_for_function(
            "(sel) => (document.querySelector(sel)?.innerText || '').includes('not trained')",
            arg=f"{NODE_GALLERY} .papa-msg",
            timeout=120_000,
        )
        tab_a.screenshot(path=str(artifacts / "picker_failed_round.png"))
        msg = tab_a.locator(f"{NODE_GALLERY} .papa-msg").inner_text()
        assert msg == "Round not trained \u2014 labels kept.", msg
        assert tab_a.locator(PROGRESS_TEXT).count() == 0
        assert tab_a.locator(f"{NODE_GALLERY} .papa-waiting").count() == 0
        assert tab_b.locator(PROGRESS_TEXT).count() == 0
        # Both rounds' labels are in the profile (skips recorded as 0).
        assert [r["label"] for r in history(server.base, name_a)] == [1.0, 0.0, -1.0, 0.0]
        assert not _page_papa_errors(log_a) and not _page_papa_errors(log_b)
    finally:
        _cancel_left_over(server.url, cid_a)
        tab_a.context.close()
        tab_b.context.close()
