"""Draw the README's pictures as an artist makes them: the real server, the pinned frontend in
Chromium, the digits template opened from the template browser, labels given with the mouse.

    .host/venv/bin/python scripts/readme_pictures.py [--rounds 10]

docs/picker_panel.jpg
    The preference picker panel of the first round: the demo model's own digits, labelled.
docs/before_after.png
    The template's PAPA Before / After grid after --rounds rounds of one profile: the demo model's
    digits (top row) and the personalised model's at the same seeds (bottom row).

The "artist" likes 1, 4, 7 and 9 and dislikes every other digit: each candidate is read by the
bundled classifier (comfy_papa/digits/classifier.py) and clicked in the panel, once for like,
twice for dislike. The template runs as shipped, its widgets untouched.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from make_thumbnails import BG, LIKE, MUTED, TEXT, font  # noqa: E402

STEM, PACK = "papa_digits_demo", "comfy-papa"
PREFERRED = {1, 4, 7, 9}
DIALOG = ".papa-overlay .papa-dialog"
TILES = ".papa-overlay .papa-tile"


def view(url: str, ref: dict) -> Image.Image:
    r = requests.get(url + "/view", params=ref, timeout=120)
    r.raise_for_status()
    return Image.open(io.BytesIO(r.content)).convert("RGB")


def read_digits(images: list[Image.Image]) -> list[tuple[int, float]]:
    """(digit, confidence) per picture, by the bundled classifier."""
    import numpy as np
    import torch

    from comfy_papa.digits.classifier import classify

    x = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) / 255 for im in images]))
    conf, digit = classify(x).max(-1)
    return list(zip(digit.tolist(), conf.tolist(), strict=True))


def finished_runs(url: str, profile: str) -> int:
    n = 0
    for entry in requests.get(url + "/history", timeout=120).json().values():
        named = any(n["inputs"].get("name") == profile for n in entry["prompt"][2].values())
        n += named and entry.get("status", {}).get("completed") is not None
    return n


def last_grid(url: str, profile: str) -> Image.Image:
    runs = [
        e
        for e in requests.get(url + "/history", timeout=120).json().values()
        if any(n["inputs"].get("name") == profile for n in e["prompt"][2].values())
    ]
    run = max(runs, key=lambda e: e["prompt"][0])
    assert run["status"]["status_str"] == "success", run["status"]
    node = next(k for k, n in run["prompt"][2].items() if n["class_type"] == "PAPABeforeAfter")
    [ref] = run["outputs"][node]["images"]
    return view(url, ref)


def captioned(grid: Image.Image, rounds: int, liked: int, disliked: int) -> Image.Image:
    """The grid with its rows named on the left and what the artist did above."""
    label_w, top = 300, 70
    out = Image.new("RGB", (grid.width + label_w + 20, grid.height + top + 20), BG)
    out.paste(grid, (label_w, top))
    d = ImageDraw.Draw(out)
    d.text(
        (20, top // 2),
        f"{rounds} rounds: liked every 1, 4, 7 and 9 ({liked}), disliked the rest ({disliked})",
        font=font(30, True),
        fill=TEXT,
        anchor="lm",
    )
    row = (grid.height - 16) // 2  # the node shows the rows 16 px apart (4 x its 4 px gap)
    for k, (text, colour) in enumerate((("demo model", MUTED), ("your model", LIKE))):
        y = top + k * (row + 16) + row // 2
        d.text((label_w - 24, y), text, font=font(34, True), fill=colour, anchor="rm")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from harness.browser import launch, open_app
    from harness.comfy_server import ComfyServer, make_base_directory

    profile = "digits-taste"  # the template's own (the server's folders are new each time)
    totals = {"like": 0, "dislike": 0}
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(make_base_directory(Path(tmp), None)).start(timeout=600)
        try:
            requests.post(server.url + "/settings/Comfy.TutorialCompleted", json=True, timeout=120)
            with sync_playwright() as p:
                browser = launch(p)
                page, _log = open_app(browser, server.url, timeout_ms=300_000)
                cid = page.evaluate("() => sessionStorage.getItem('clientId') || app.api.clientId")
                page.locator(".comfy-menu-button-wrapper").click()
                page.get_by_role("menuitem", name="Browse Templates").click()
                try:
                    page.get_by_role("button", name=PACK, exact=True).click(timeout=60_000)
                except Exception:
                    page.screenshot(path=str(args.out / "failed.png"))
                    raise
                page.locator(f"[data-testid=template-workflow-{STEM}]").click()
                page.wait_for_function(
                    "() => app.graph.nodes.some((n) => n.type === 'PAPABeforeAfter') "
                    "&& !document.querySelector('.p-dialog')",
                    timeout=30_000,
                )
                for k in range(1, args.rounds + 1):
                    t0 = time.monotonic()
                    page.locator("#graph-canvas").click(position={"x": 700, "y": 800})
                    page.keyboard.press("Control+Enter")
                    page.wait_for_selector(DIALOG, timeout=300_000)
                    page.wait_for_function(
                        "(sel) => [...document.querySelectorAll(sel)].every((i) => i.complete)",
                        arg=f"{TILES} img",
                    )
                    req = requests.get(
                        server.url + "/papa/pending", params={"client_id": cid}, timeout=120
                    ).json()["pending"][0]
                    seen = read_digits([view(server.url, c["image"]) for c in req["candidates"]])
                    tiles = page.locator(TILES)
                    for i, (digit, _conf) in enumerate(seen):
                        liked = digit in PREFERRED
                        totals["like" if liked else "dislike"] += 1
                        for _ in range(1 if liked else 2):
                            tiles.nth(i).click()
                    page.mouse.move(0, 0)  # no hover outline in the picture
                    if k == 1:
                        page.wait_for_timeout(300)
                        shot = page.locator(DIALOG).screenshot()
                        Image.open(io.BytesIO(shot)).convert("RGB").save(
                            args.out / "picker_panel.jpg", quality=90
                        )
                        print(f"wrote {args.out / 'picker_panel.jpg'}")
                    page.keyboard.press("Enter")
                    while finished_runs(server.url, profile) < k:
                        time.sleep(0.5)
                    print(
                        f"round {k}: {[d for d, _ in seen]} -> {time.monotonic() - t0:.0f} s",
                        flush=True,
                    )
                browser.close()
            grid = last_grid(server.url, profile)
        finally:
            server.stop()
    path = args.out / "before_after.png"
    captioned(grid, args.rounds, totals["like"], totals["dislike"]).save(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
