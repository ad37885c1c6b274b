"""Open the ComfyUI page in Debian Chromium through Playwright and collect console errors."""

from __future__ import annotations

from dataclasses import dataclass, field

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class ConsoleLog:
    errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def errors_from(self, needle: str) -> list[str]:
        return [e for e in self.errors if needle in e]


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def open_app(browser, url: str, timeout_ms: int = 60_000):
    """A new page on the ComfyUI frontend, returned once the app object is ready."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    log = ConsoleLog()

    def on_console(msg):
        text = f"{msg.type}: {msg.text} @ {msg.location.get('url', '')}"
        log.messages.append(text)
        if msg.type == "error":
            log.errors.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: log.errors.append(f"pageerror: {exc} @ {exc.stack or ''}"))
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    wait_for_app(page, timeout_ms)
    return page, log


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(
        "() => window.app && window.app.graph && window.app.extensionManager",
        timeout=timeout_ms,
    )
