"""The simulated user's eyes: a small CNN (2 conv + 2 FC) that reads a digit. Torch only."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import CLASSIFIER_WEIGHTS


class DigitClassifier(nn.Module):
    """[B, 1, 32, 32] gray in [0, 1] (white ink on black) -> logits over the digits 0-9."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, 10)
        self.dropout = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv2(x)), 2)
        x = self.dropout(nn.functional.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE [B, H, W, C] (or [B, 1, H, W]) in [0, 1] -> [B, 1, H, W] float32 gray."""
    if images.ndim == 4 and images.shape[1] == 1:
        return images.float()
    if images.ndim != 4:
        raise ValueError(f"Expected images [B, H, W, C]; got shape {tuple(images.shape)}.")
    return images.float().mean(dim=-1, keepdim=True).permute(0, 3, 1, 2).contiguous()


_CACHE: dict[str, DigitClassifier] = {}


def load_classifier(path: Path | str = CLASSIFIER_WEIGHTS) -> DigitClassifier:
    """The committed classifier, in eval mode, cached per path."""
    from safetensors.torch import load_file

    key = str(path)
    if key not in _CACHE:
        net = DigitClassifier()
        net.load_state_dict(load_file(key))
        _CACHE[key] = net.eval()
    return _CACHE[key]


@torch.no_grad()
def classify(images: torch.Tensor, net: DigitClassifier | None = None) -> torch.Tensor:
    """Class probabilities [B, 10] for IMAGE [B, H, W, C] (or gray [B, 1, H, W]) in [0, 1]."""
    net = net or load_classifier()
    x = to_gray(images).cpu()
    if x.shape[-2:] != (32, 32):
        x = nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True)
    return torch.softmax(net(x), dim=-1)
