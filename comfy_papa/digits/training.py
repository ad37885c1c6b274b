"""Training a digits diffusion model: the data draws, loss and loop every architecture shares.

Torch only: `scripts/train_digits.py` trains the ComfyUI demo UNet with it and
`scripts/train_digits_diffusers.py` a diffusers UNet2DModel, on the same data (`data.py`).

Objectives (`--prediction`). v (the ComfyUI demo model): ||v - v_theta||^2 with
v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho 2022), weighted min(1, 6 / (1 + SNR_t)),
i.e. the x0 error weighted 1 + SNR_t and capped at 6 on nearly clean inputs; no DC term (see
`loss_weights`). eps (the diffusers twin): Ho et al. 2020, eq. 14 (simple loss)
||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)||^2 with t uniform in 0..T-1,
weighted by
    w_t = min(SNR_t, 5) / SNR_t * min(1 + sigma_t^2, 20),   sigma_t^2 = 1 / SNR_t.
The first factor is Min-SNR-5 (Hang et al. 2023, eq. 8 for epsilon prediction): less weight on
nearly clean inputs. The second is the v-prediction loss's weight in epsilon terms (Salimans & Ho
2022, ||v - v_hat||^2 = (1 + sigma^2) ||eps - eps_hat||^2), capped at 20: a sampler turns an epsilon
error at sigma into a sigma-times larger error in x0, so the first, noisiest steps need precise
epsilon; with the plain loss, a short CPU run leaves them worse than predicting the mean image.
Plus a term on each image's mean (DC) epsilon error, min(1 + sigma^2, 1000) * mean(eps_hat - eps)^2:
GroupNorm UNets pass the input's mean through poorly, and at sigma = 157 a DC error of 0.01 in
epsilon makes the whole background 1.5 too bright; per-pixel MSE barely sees it.

Seeded: the minibatch, timesteps and noise of step s come from a CPU generator seeded by (seed, s),
so a resumed run is the same as an uninterrupted one and devices differ only by rounding.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import Tensor

from ..core.optim import flatten_optimizer, restore_optimizer

PREDICTIONS = ("eps", "v")
LOSS_TEXT = {
    "eps": "eps MSE * min(SNR, 5) / SNR * min(1 + sigma^2, 20) "
    "+ min(1 + sigma^2, 1000) * (image-mean eps error)^2",
    "v": "v MSE * min(1, (1 + 5) / (1 + SNR))",
}


@dataclass(frozen=True)
class TrainOptions:
    """The command-line options of both training scripts (each with its own defaults)."""

    steps: int
    batch: int
    lr: float
    ema: float
    max_minutes: float
    workdir: Path
    out: Path
    min_snr: float = 5.0
    v_weight_cap: float = 20.0
    dc_weight_cap: float = 1000.0
    warmup: int = 50
    seed: int = 20261126
    threads: int = 1
    save_every: int = 100
    no_bf16: bool = False
    device: str = "cpu"
    prediction: str = "eps"


def add_arguments(ap: argparse.ArgumentParser, defaults: TrainOptions) -> None:
    """The shared options, defaulting to `defaults`."""
    d = defaults
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--min-snr", type=float, default=d.min_snr)
    ap.add_argument("--v-weight-cap", type=float, default=d.v_weight_cap)
    ap.add_argument("--dc-weight-cap", type=float, default=d.dc_weight_cap)
    ap.add_argument("--warmup", type=int, default=d.warmup)
    ap.add_argument("--ema", type=float, default=d.ema)
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=d.max_minutes,
        help="stop early (and say so in the metadata) on a machine too busy to finish in time",
    )
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--threads", type=int, default=d.threads, help="1 is fastest on a busy machine")
    ap.add_argument("--save-every", type=int, default=d.save_every)
    ap.add_argument("--workdir", type=Path, default=d.workdir)
    ap.add_argument("--out", type=Path, default=d.out)
    ap.add_argument("--no-bf16", action="store_true", help="train in fp32 (slower)")
    ap.add_argument(
        "--prediction",
        choices=PREDICTIONS,
        default=d.prediction,
        help="what the network predicts: eps (epsilon) or v (Salimans & Ho 2022)",
    )
    ap.add_argument(
        "--device",
        default=d.device,
        help="cpu or cuda; the random draws are made on the CPU either way, so a run differs "
        "across devices only by floating-point rounding",
    )


def options_from(ns: argparse.Namespace) -> TrainOptions:
    return TrainOptions(**{f.name: getattr(ns, f.name) for f in fields(TrainOptions)})


def loss_weights(abar: Tensor, opts: TrainOptions) -> tuple[Tensor, Tensor]:
    """Per-timestep weights of the per-pixel MSE and of the DC term (module docstring)."""
    snr = abar / (1 - abar)
    if opts.prediction == "v":
        # v MSE = (1 + SNR) x0 MSE: the x0 weight capped at 1 + min_snr (Min-SNR's cap on nearly
        # clean inputs), and no DC term: a v error moves x0 by sqrt(1 - abar) <= 1 times itself.
        return ((1 + opts.min_snr) / (1 + snr)).clamp(max=1.0), torch.zeros_like(snr)
    mse_w = snr.clamp(max=opts.min_snr) / snr * (1 + 1 / snr).clamp(max=opts.v_weight_cap)
    dc_w = (1 + 1 / snr).clamp(max=opts.dc_weight_cap)
    return mse_w, dc_w


def draw_batch(
    seed: int, step: int, n: int, batch: int, timesteps: int, shape: tuple[int, ...]
) -> tuple[Tensor, Tensor, Tensor]:
    """Step `step`'s image indices, timesteps and noise, from a CPU generator seeded by both."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(0, n, (batch,), generator=gen)
    t = torch.randint(0, timesteps, (batch,), generator=gen)
    eps = torch.randn(batch, *shape, generator=gen)
    return idx, t, eps


def weighted_loss(pred: Tensor, target: Tensor, mse_w: Tensor, dc_w: Tensor) -> Tensor:
    """Mean over the batch of mse_w * per-image MSE + dc_w * (per-image mean error)^2."""
    err = pred.float() - target
    mse = err.pow(2).mean(dim=(1, 2, 3))
    dc = err.mean(dim=(1, 2, 3)).pow(2)
    return (mse_w * mse + dc_w * dc).mean()


def ema_update(ema: dict[str, Tensor], net: torch.nn.Module, step: int, decay: float) -> None:
    """EMA of the weights with the warm-up min(decay, (1 + step) / (10 + step))."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                ema[k].copy_(v)


def _names(net: torch.nn.Module) -> list[str]:
    return [str(i) for i in range(len(list(net.parameters())))]


def save_resume(
    path: Path, net: torch.nn.Module, ema: dict, opt, step: int, wall: float, losses: list
) -> None:
    """Resume state as safetensors (never pickle): weights, EMA, Adam state, progress."""
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.items()})
    tensors.update({f"opt.{k}": v for k, v in flatten_optimizer(opt, _names(net)).items()})
    meta = {"step": str(step), "wall": str(wall), "losses": json.dumps(losses)}
    tmp = path.with_name("tmp-" + path.name)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta
    )
    os.replace(tmp, path)


def load_resume(path: Path, net: torch.nn.Module, ema: dict, opt) -> tuple[int, float, list]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    for k, v in tensors.items():
        if k.startswith("ema."):
            ema[k[4:]].copy_(v)
    flat = {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}
    restore_optimizer(opt, _names(net), flat)
    return int(meta["step"]), float(meta["wall"]), json.loads(meta["losses"])


@dataclass
class TrainResult:
    ema: dict[str, Tensor]
    steps: int
    seconds: float
    losses: list[float]
    stopped_early: bool


def train(
    net: torch.nn.Module,
    predict: Callable[[Tensor, Tensor], Tensor],
    data: Tensor,
    abar: Tensor,
    opts: TrainOptions,
) -> TrainResult:
    """Train `net` (on opts.device, initialised) to predict eps or v (`opts.prediction`) on `data`
    (latents in [-1, 1]).

    `predict(x_t, t)`: the network's output for the variance-preserving input x_t at integer
    timesteps t (both on the device). `abar`: the cumulative alphas, one per timestep (CPU).
    Resumes from opts.workdir/last.safetensors and saves there every opts.save_every steps.
    """
    dev = torch.device(opts.device)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam(net.parameters(), lr=opts.lr)
    mse_weight, dc_weight = loss_weights(abar, opts)
    timesteps, n = len(abar), data.shape[0]

    opts.workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = opts.workdir / "last.safetensors"
    step, wall, losses = 0, 0.0, []
    if ckpt_path.exists():
        step, wall, losses = load_resume(ckpt_path, net, ema, opt)
        print(f"resumed at step {step} ({wall:.0f}s so far)", flush=True)

    net.train()
    t_start = time.monotonic() - wall
    stopped_early = False
    while step < opts.steps:
        if time.monotonic() - t_start > opts.max_minutes * 60:
            stopped_early = True
            break
        idx, t, eps = draw_batch(opts.seed, step, n, opts.batch, timesteps, data.shape[1:])
        eps = eps.to(dev)
        a = abar[t].view(-1, 1, 1, 1).to(dev)
        x0 = data[idx.to(dev)]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        for g in opt.param_groups:
            g["lr"] = opts.lr * min(1.0, (step + 1) / opts.warmup)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=not opts.no_bf16):
            pred = predict(xt, t.to(dev))
        # v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022, Sec. 4)
        target = eps if opts.prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0
        loss = weighted_loss(pred, target, mse_weight[t].to(dev), dc_weight[t].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema_update(ema, net, step, opts.ema)
        losses.append(float(loss.detach()))
        step += 1
        if step % 20 == 0:
            el = time.monotonic() - t_start
            recent = sum(losses[-20:]) / 20
            rate = step * opts.batch / el
            print(f"step {step} loss {recent:.4f} {el:.0f}s {rate:.0f} img/s", flush=True)
        if step % opts.save_every == 0 or step == opts.steps:
            wall = time.monotonic() - t_start
            save_resume(ckpt_path, net, ema, opt, step, wall, losses)
    return TrainResult(ema, step, time.monotonic() - t_start, losses, stopped_early)


def training_stats(opts: TrainOptions, result: TrainResult, data: str) -> dict:
    """What the weights' metadata records about the run."""
    final_loss = sum(result.losses[-100:]) / max(1, min(100, len(result.losses)))
    return {
        "steps": result.steps,
        "steps_planned": opts.steps,
        "stopped_at_time_limit": result.stopped_early,
        "batch": opts.batch,
        "lr": opts.lr,
        "warmup": opts.warmup,
        "ema": opts.ema,
        "min_snr_gamma": opts.min_snr,
        **(
            {"v_weight_cap": opts.v_weight_cap, "dc_weight_cap": opts.dc_weight_cap}
            if opts.prediction == "eps"
            else {}
        ),
        "seed": opts.seed,
        "bf16_autocast": not opts.no_bf16,
        "threads": opts.threads,
        "device": opts.device,
        "images_seen": result.steps * opts.batch,
        "train_seconds": round(result.seconds, 1),
        "final_loss_mean_last_100_steps": round(final_loss, 5),
        "prediction": opts.prediction,
        "loss": LOSS_TEXT[opts.prediction],
        "data": data,
        "torch": torch.__version__,
    }
