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
