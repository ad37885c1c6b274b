"""Draw the template thumbnails (workflows/<name>.jpg): one clear card per template.

The pinned frontend's template browser shows a custom node pack's `example_workflows/<name>.jpg`
(here served from workflows/) in a square box, scaled to fit ("object-contain", at most 16rem
high), so a card is square and its text is large: a screenshot of the whole UI shrunk to that box
is unreadable.

    .host/venv/bin/python scripts/make_thumbnails.py            # every card
    .host/venv/bin/python scripts/make_thumbnails.py papa_digits_demo

papa_digits_demo: real digits drawn by the demo model (the Digits Demo Loader's weights, sampled
through ComfyUI's own comfy.sample as the template samples: euler, normal, 20 steps, cfg 1),
read by the bundled classifier, marked liked (1, 4, 7, 9) or disliked as an artist would.
papa_loop_sd15 / epapa_loop_sdxl: a diagram of the loop with the model family named.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "workflows"
SIZE = 512  # square: the template browser's thumbnail box is square

BG = (28, 32, 42)
PANEL = (44, 50, 64)
TEXT = (240, 242, 246)
MUTED = (170, 178, 192)
LIKE = (26, 160, 70)  # brighter than the panel's #1a7f37 so it reads on a dark card
DISLIKE = (210, 48, 48)
ACCENT = (86, 140, 240)
FAMILY = {"SD 1.5": ACCENT, "SDXL": (150, 96, 224)}  # the badge's colour per model family

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu")]


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for d in FONT_DIRS:
        if (d / name).exists():
            return ImageFont.truetype(str(d / name), size)
    return ImageFont.load_default(size)  # Pillow's own scalable font


def centred_text(draw: ImageDraw.ImageDraw, xy, text: str, size: int, fill=TEXT, bold=False):
    f = font(size, bold)
    draw.text(xy, text, font=f, fill=fill, anchor="mm")


def tick(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill=LIKE) -> None:
    """A filled badge with a white check mark, drawn (no font glyph needed)."""
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    pts = [(cx - 0.5 * r, cy), (cx - 0.12 * r, cy + 0.4 * r), (cx + 0.52 * r, cy - 0.38 * r)]
    draw.line(pts, fill="white", width=max(3, int(r / 3.2)), joint="curve")


def cross(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill=DISLIKE) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    d, w = 0.4 * r, max(3, int(r / 3.2))
    draw.line((cx - d, cy - d, cx + d, cy + d), fill="white", width=w)
    draw.line((cx - d, cy + d, cx + d, cy - d), fill="white", width=w)


def arrow(draw: ImageDraw.ImageDraw, a, b, fill=MUTED, width=6, head=16) -> None:
    (x0, y0), (x1, y1) = a, b
    draw.line((x0, y0, x1, y1), fill=fill, width=width)
    dx, dy = x1 - x0, y1 - y0
    n = (dx * dx + dy * dy) ** 0.5
    ux, uy = dx / n, dy / n
    px, py = -uy, ux
    tip = (x1 + ux * head * 0.6, y1 + uy * head * 0.6)
    left = (x1 - ux * head + px * head * 0.75, y1 - uy * head + py * head * 0.75)
    right = (x1 - ux * head - px * head * 0.75, y1 - uy * head - py * head * 0.75)
    draw.polygon([tip, left, right], fill=fill)


def save(card: Image.Image, stem: str, png_copy: Path | None) -> None:
    card.convert("RGB").save(OUT / f"{stem}.jpg", quality=90)
    if png_copy:
        png_copy.mkdir(parents=True, exist_ok=True)
        card.save(png_copy / f"{stem}.png")
    print(f"wrote workflows/{stem}.jpg")


# ---- the digits demo: real samples of the demo model -----------------------------------------
PREFERRED = {1, 4, 7, 9}
ROWS, COLS = 3, 4


def demo_digits(n: int = 160, seed: int = 7):
    """[n, 32, 32] gray samples of the demo model in [0, 1], their classes and confidences."""
    sys.path.insert(0, str(REPO / "scripts"))
    from digits_base_stats import import_comfy

    import_comfy("cpu")
    import comfy.sample
    import torch

    from comfy_papa.digits.classifier import classify
    from comfy_papa.digits.model import (
        empty_conditioning,
        empty_latent,
        load_digits_model,
        pixel_space_vae,
    )

    torch.set_num_threads(2)
    model, vae, cond = load_digits_model(), pixel_space_vae(), empty_conditioning()
    latent = empty_latent(n)["samples"]
    noise = comfy.sample.prepare_noise(latent, seed)
    samples = comfy.sample.sample(
        model, noise, 20, 1.0, "euler", "normal", cond, cond, latent, disable_pbar=True, seed=seed
    )
    gray = vae.decode(samples).float().mean(-1).clamp(0, 1).cpu()
    conf, digit = classify(gray.unsqueeze(1)).max(-1)
    return gray, digit.tolist(), conf.tolist()


def pick(digits: list[int], conf: list[float]) -> list[int]:
    """ROWS x COLS sample indices: the most legible samples, as many classes as possible, half of
    them preferred (liked) and half not (disliked), mixed as candidates come."""
    order = sorted(range(len(digits)), key=lambda i: -conf[i])
    liked, disliked, seen = [], [], set()
    for pass_ in (0, 1):  # first one per class, then fill with repeats
        for i in order:
            if (pass_ == 0 and digits[i] in seen) or i in liked or i in disliked:
                continue
            group = liked if digits[i] in PREFERRED else disliked
            if len(group) < ROWS * COLS // 2:
                group.append(i)
                seen.add(digits[i])
    chosen = [x for pair in zip(liked, disliked, strict=False) for x in pair]
    return chosen[: ROWS * COLS]


def digits_card(png_copy: Path | None) -> None:
    gray, digits, conf = demo_digits()
    chosen = pick(digits, conf)
    card = Image.new("RGB", (SIZE, SIZE), BG)
    draw = ImageDraw.Draw(card)
    centred_text(draw, (SIZE // 2, 44), "Teach it your digits", 42, bold=True)
    tile, gap = 104, 14
    x0 = (SIZE - (COLS * tile + (COLS - 1) * gap)) // 2
    y0 = 92
    for k, i in enumerate(chosen):
        r, c = divmod(k, COLS)
        x, y = x0 + c * (tile + gap), y0 + r * (tile + gap)
        liked = digits[i] in PREFERRED
        colour = LIKE if liked else DISLIKE
        draw.rounded_rectangle((x, y, x + tile, y + tile), radius=10, fill=colour)
        pixels = (gray[i].numpy() * 255).round().astype("uint8")
        digit = Image.fromarray(pixels, "L").resize((tile - 12, tile - 12), Image.NEAREST)
        card.paste(digit.convert("RGB"), (x + 6, y + 6))
        (tick if liked else cross)(draw, x + tile - 16, y + 16, 15)
    footer = y0 + ROWS * (tile + gap) - gap
    mid = (footer + SIZE) // 2
    legend = font(30, True)
    width = 34 + 10 + draw.textlength("like", font=legend) + 44 + 34 + 10
    width += draw.textlength("dislike", font=legend)
    x = (SIZE - width) / 2
    tick(draw, x + 17, mid, 17)
    x += 44
    draw.text((x, mid), "like", font=legend, fill=TEXT, anchor="lm")
    x += draw.textlength("like", font=legend) + 44
    cross(draw, x + 17, mid, 17)
    draw.text((x + 44, mid), "dislike", font=legend, fill=TEXT, anchor="lm")
    save(card, "papa_digits_demo", png_copy)


# ---- the SD1.5 / SDXL loops: a diagram ---------------------------------------------------------
def loop_card(stem: str, method: str, family: str, png_copy: Path | None) -> None:
    card = Image.new("RGB", (SIZE, SIZE), BG)
    draw = ImageDraw.Draw(card)
    centred_text(draw, (SIZE // 2, 46), f"{method} loop", 44, bold=True)
    badge = font(34, True)
    w = draw.textlength(family, font=badge)
    bx0, bx1 = SIZE / 2 - w / 2 - 18, SIZE / 2 + w / 2 + 18
    draw.rounded_rectangle((bx0, 78, bx1, 126), radius=12, fill=FAMILY[family])
    draw.text((SIZE / 2, 102), family, font=badge, fill="white", anchor="mm")

    # Four boxes in a cycle: candidates -> like / dislike -> fine-tune -> your model -> ...
    bw, bh, gx = 196, 150, 40
    left, right = (SIZE - 2 * bw - gx) // 2, (SIZE + gx) // 2
    top, bottom = 152, 152 + bh + 46
    boxes = {
        "candidates": (left, top),
        "like / dislike": (right, top),
        "fine-tune": (right, bottom),
        "your model": (left, bottom),
    }
    for label, (x, y) in boxes.items():
        draw.rounded_rectangle((x, y, x + bw, y + bh), radius=16, fill=PANEL)
        draw.text((x + bw / 2, y + bh - 30), label, font=font(28, True), fill=TEXT, anchor="mm")
    # candidates: four little pictures
    x, y = boxes["candidates"]
    shades = [(120, 150, 200), (200, 150, 110), (130, 180, 140), (180, 130, 170)]
    for k, shade in enumerate(shades):
        sx = x + 22 + k * 40
        draw.rounded_rectangle((sx, y + 26, sx + 32, y + 70), radius=5, fill=shade)
    # like / dislike: the marks
    x, y = boxes["like / dislike"]
    tick(draw, x + bw / 2 - 36, y + 52, 28)
    cross(draw, x + bw / 2 + 36, y + 52, 28)
    # fine-tune: a rising bar chart
    x, y = boxes["fine-tune"]
    for k, hgt in enumerate((18, 32, 46, 60)):
        bx = x + 46 + k * 28
        draw.rectangle((bx, y + 84 - hgt, bx + 18, y + 84), fill=ACCENT)
    # your model: a picture with a heart-coloured frame
    x, y = boxes["your model"]
    draw.rounded_rectangle((x + 66, y + 18, x + 130, y + 86), radius=8, fill=LIKE)
    draw.rounded_rectangle((x + 72, y + 24, x + 124, y + 80), radius=5, fill=(200, 150, 110))
    # arrows of the cycle
    mid_top, mid_bottom = top + bh / 2, bottom + bh / 2
    arrow(draw, (left + bw + 4, mid_top), (right - 12, mid_top))
    arrow(draw, (right + bw / 2, top + bh + 4), (right + bw / 2, bottom - 12))
    arrow(draw, (right - 4, mid_bottom), (left + bw + 12, mid_bottom))
    arrow(draw, (left + bw / 2, bottom - 4), (left + bw / 2, top + bh + 12))
    save(card, stem, png_copy)


CARDS = {
    "papa_digits_demo": digits_card,
    "papa_loop_sd15": lambda png: loop_card("papa_loop_sd15", "PAPA", "SD 1.5", png),
    "epapa_loop_sdxl": lambda png: loop_card("epapa_loop_sdxl", "EPAPA", "SDXL", png),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help=f"any of {', '.join(CARDS)} (default: all)")
    ap.add_argument("--png", type=Path, default=None, help="also write PNG copies here")
    args = ap.parse_args()
    if unknown := set(args.names) - set(CARDS):
        ap.error(f"no card for {', '.join(sorted(unknown))}")
    for name in args.names or CARDS:
        CARDS[name](args.png)


if __name__ == "__main__":
    main()
