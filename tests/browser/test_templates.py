"""Every workflow template opens from the pinned frontend's template browser as a user opens it:
no alert, no error toast, no dialog, no console error, and the file is what the frontend saves."""

import json

import pytest
import requests

from harness.browser import open_app
from harness.paths import REPO

TEMPLATES = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
PACK = "comfy-papa"  # the folder name under custom_nodes: the template browser's category

# The test server runs with --disable-api-nodes, whose Content-Security-Policy blocks the
# frontend's registry look-ups (api.comfy.org) for every custom node of a loaded graph.
BLOCKED_REGISTRY = ("violates the following Content Security Policy", "https://api.comfy.org/")


@pytest.fixture(scope="module")
def server(comfy):
    # A fresh user gets the template browser on first visit; open it from the menu instead.
    requests.post(comfy.url + "/settings/Comfy.TutorialCompleted", json=True, timeout=10)
    return comfy


def _unexpected(errors: list[str]) -> list[str]:
    return [e for e in errors if not all(part in e for part in BLOCKED_REGISTRY)]


def test_the_template_browser_lists_every_workflow(server):
    listed = requests.get(server.url + "/api/workflow_templates", timeout=10).json()
    assert sorted(listed[PACK]) == TEMPLATES


def test_the_template_browser_shows_each_thumbnail_whole(server, browser, artifacts):
    """Each card's thumbnail loads and is square: the browser's thumbnail box is square and fits
    the picture inside it, so a square card fills it (scripts/make_thumbnails.py draws them)."""
    page, _log = open_app(browser, server.url)
    try:
        page.locator(".comfy-menu-button-wrapper").click()
        page.get_by_role("menuitem", name="Browse Templates").click()
        page.get_by_role("button", name=PACK, exact=True).click()
        sizes = {}
        for stem in TEMPLATES:
            img = page.locator(f"[data-testid=template-workflow-{stem}] img").first
            img.wait_for(timeout=30_000)
            page.wait_for_function(
                "(e) => e.complete && e.naturalWidth > 0", arg=img.element_handle()
            )
            sizes[stem] = img.evaluate("(e) => [e.naturalWidth, e.naturalHeight]")
            box = img.bounding_box()
            assert box["width"] >= 150 and abs(box["width"] - box["height"]) <= 2, (stem, box)
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "template_browser.png"))
        for stem, (w, h) in sizes.items():
            assert w == h >= 256, (stem, w, h)
    finally:
        page.context.close()


@pytest.mark.parametrize("stem", TEMPLATES)
def test_template_opens_from_the_menu_without_alert_or_error(server, browser, artifacts, stem):
    wf = json.loads((REPO / "workflows" / f"{stem}.json").read_text())
    page, log = open_app(browser, server.url)
    native_dialogs: list[str] = []

    def on_dialog(d):
        native_dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.wait_for_timeout(1000)  # let start-up settle: only what the template does counts
        start = len(log.errors)
        # The README's path: the ComfyUI logo menu > Browse Templates > Extensions > comfy-papa.
        page.locator(".comfy-menu-button-wrapper").click()
        page.get_by_role("menuitem", name="Browse Templates").click()
        page.get_by_role("button", name=PACK, exact=True).click()
        page.locator(f"[data-testid=template-workflow-{stem}]").click()
        page.wait_for_function(
            "(n) => app.graph.nodes.length === n && !document.querySelector('.p-dialog')",
            arg=len(wf["nodes"]),
            timeout=30_000,
        )
        assert page.evaluate("() => app.extensionManager.workflow.activeWorkflow.path") == (
            f"workflows/{stem}.json"
        )
        page.wait_for_timeout(1500)  # a toast or dialog raised by the load renders by now
        page.screenshot(path=str(artifacts / f"template_{stem}.png"))

        toasts = page.locator(".p-toast-message").all_inner_texts()
        assert toasts == [], toasts
        dialogs = page.locator(".p-dialog, [role=alertdialog]").all_inner_texts()
        assert dialogs == [], dialogs
        assert native_dialogs == []
        assert _unexpected(log.errors[start:]) == [], log.errors[start:]
        # The file is exactly what the frontend saves for the graph it loaded (the workflow
        # store saves JSON.stringify(app.graph.serialize())): rebuild with
        # scripts/build_workflow.py resave <name> after a frontend or node change.
        saved = page.evaluate("() => JSON.parse(JSON.stringify(app.graph.serialize()))")
        assert saved == wf, f"workflows/{stem}.json differs from what the frontend saves"
    finally:
        page.context.close()
