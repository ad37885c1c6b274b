"""Measure the digits demo model as the benchmark sees it: sample, decode, classify.

Prints (and with --json writes) the preferred fraction for a digit set, the class histogram, the
classifier's mean confidence and the medians of the simulated user's rule measures, for the model's
samples and for the training digits. Sampling runs through ComfyUI's own comfy.sample.sample.

Usage: nice -n 19 .host/venv/bin/python scripts/digits_base_stats.py [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def import_comfy(device: str = "cpu") -> None:
    sys.path.insert(0, str(REPO / ".host" / "ComfyUI"))
    sys.path.insert(0, str(REPO))
    sys.argv = [sys.argv[0]] + (["--cpu"] if device == "cpu" else [])
    import comfy.options

    comfy.options.enable_args_parsing()


def rule_medians(gray: torch.Tensor) -> dict[str, float]:
    from comfy_papa.digits import rules

    out = {}
    for name, fn in rules.MEASURES.items():
        vals = torch.tensor([fn(g) for g in gray])
        out[name] = round(float(vals.median()), 3)
    return out


def summarise(gray: torch.Tensor, preferred: set[int]) -> dict:
    from comfy_papa.digits.classifier import classify

    probs = classify(gray.unsqueeze(1))
    conf, digit = probs.max(-1)
    counts = torch.bincount(digit, minlength=10)
    pref = torch.tensor([int(d) in preferred for d in digit])
    pref_counts = [int(counts[d]) for d in sorted(preferred)]
    return {
        "n": len(digit),
        "preferred_fraction": round(float(pref.float().mean()), 4),
        "class_counts": [int(c) for c in counts],
        "min_class_share_of_preferred": round(min(pref_counts) / max(1, sum(pref_counts)), 4),
        "confidence_mean": round(float(conf.mean()), 4),
        # The demo's legibility goal: the share of samples read with confidence >= 0.9.
        "share_confident_0.9": round(float((conf >= 0.9).float().mean()), 4),
        "rule_medians": rule_medians(gray),
    }


def save_grid(gray: torch.Tensor, path: Path, cols: int = 8) -> None:
    from PIL import Image

    n, h, w = gray.shape
    rows = (n + cols - 1) // cols
    grid = torch.zeros(rows * h, cols * w)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = gray[i]
    img = Image.fromarray((grid.clamp(0, 1) * 255).round().byte().numpy())
    img.resize((cols * w * 2, rows * h * 2), Image.NEAREST).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--scheduler", default="normal")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--preferred", default="1,4,7,9")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--grid", type=Path, default=None, help="write the first 64 samples as a PNG")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()

    import_comfy(args.device)
    import comfy.sample

    from comfy_papa.digits import rules
    from comfy_papa.digits.data import load_digits
    from comfy_papa.digits.model import (
        empty_conditioning,
        empty_latent,
        load_digits_model,
        pixel_space_vae,
    )

    torch.set_num_threads(args.threads)
    preferred = rules.parse_digits(args.preferred)
    model = load_digits_model(args.weights) if args.weights else load_digits_model()
    vae = pixel_space_vae()
    cond = empty_conditioning()
    latent = empty_latent(args.samples)["samples"]
    noise = comfy.sample.prepare_noise(latent, args.seed)
    t0 = time.monotonic()
    samples = comfy.sample.sample(
        model,
        noise,
        args.steps,
        1.0,
        args.sampler,
        args.scheduler,
        cond,
        cond,
        latent,
        disable_pbar=True,
        seed=args.seed,
    )
    seconds = time.monotonic() - t0
    gray = vae.decode(samples).float().mean(-1).cpu()  # IMAGE [B, H, W, 3] -> [B, H, W]
    if args.grid:
        save_grid(gray[:64], args.grid)
    images, _ = load_digits()
    result = {
        "sampler": f"{args.sampler}/{args.scheduler}, {args.steps} steps, cfg 1, seed {args.seed}",
        "sampling_seconds": round(seconds, 1),
        "preferred": sorted(preferred),
        "model_samples": summarise(gray, preferred),
        "training_digits": summarise(images[:, 0], preferred),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
