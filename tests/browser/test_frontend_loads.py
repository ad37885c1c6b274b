"""The pack's JS extension registers in the real frontend, with no console error from it."""

from harness.browser import open_app


def test_extension_registered_without_errors(comfy, browser):
    page, log = open_app(browser, comfy.url)
    try:
        page.wait_for_function(
            "() => window.app.extensions.some(e => e.name === 'comfy_papa.core')",
            timeout=30_000,
        )
        assert page.evaluate("() => window.comfyPapa && window.comfyPapa.version")
        page.wait_for_timeout(1000)
        assert not log.errors_from("comfy-papa"), log.errors
    finally:
        page.context.close()
