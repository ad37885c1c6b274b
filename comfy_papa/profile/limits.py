"""The most latent data one picker request (one round of labelled candidates) may hold.

An open picker request keeps its candidates' latents in memory until it is answered, and the
answer saves them to the profile's pending/ folder (and, at the next fine-tune, into the
replay). Without a cap a careless "64 candidates at 8K" would write gigabytes per answer.

MAX_REQUEST_LATENT_BYTES is 256 MiB: 64 candidates (the candidate sampler's maximum) of a
4096x4096 SD1.5 / SDXL image, whose latent is 4 x 512 x 512 float32 = 4 MiB. Every ordinary
round fits with room to spare (10 SDXL candidates at 1024x1024: 10 x 256 KiB = 2.5 MiB); a
16-channel model (SD3, Flux: 16 MiB at 4096x4096) fits 16 candidates at 4096x4096 or 64 at
2048x2048. Checked by the picker node before it opens a request and by
Profile.record_feedback (every backend's way into pending/) before anything is written.

The environment variable COMFY_PAPA_MAX_REQUEST_LATENT_BYTES, read at every check, replaces the
cap (a whole number of bytes > 0): for a machine with the disk for more, and for the tests, which
lower it to refuse tiny candidates through a real server.
"""

from __future__ import annotations

import os

import torch

from .names import ProfileError

MAX_REQUEST_LATENT_BYTES = 256 * 2**20
ENV = "COMFY_PAPA_MAX_REQUEST_LATENT_BYTES"


def max_request_latent_bytes() -> int:
    """The cap in bytes: the environment's value if set, else MAX_REQUEST_LATENT_BYTES."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return MAX_REQUEST_LATENT_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ProfileError(
            f"{ENV}={raw!r} is not a whole number of bytes above 0. Nothing was recorded; fix "
            f"or unset it (unset: {MAX_REQUEST_LATENT_BYTES} bytes, 256 MiB)."
        )
    return value


def _mib(n: int) -> str:
    """Bytes for a person: MiB, KiB or B."""
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**10:.1f} KiB" if n >= 2**10 else f"{n} B"


def check_request_latents(latents: torch.Tensor, where: str) -> None:
    """ProfileError if the candidates' latents (one per row) exceed MAX_REQUEST_LATENT_BYTES;
    `where` names the caller in the message. Reads only the shape and dtype."""
    cap = max_request_latent_bytes()
    total = latents.numel() * latents.element_size()
    if total <= cap:
        return
    count = max(int(latents.shape[0]) if latents.dim() else 1, 1)
    each = total // count
    fits = cap // each if each else count
    shape = tuple(latents.shape[1:])
    raise ProfileError(
        f"{where}: the {count} candidates' latents take {_mib(total)} ({count} x {_mib(each)}, "
        f"each {shape} {str(latents.dtype).removeprefix('torch.')}); one picker request keeps "
        f"at most {_mib(cap)} of latents (they are saved to the profile). Nothing was recorded. "
        + (
            f"Use fewer candidates (at most {fits} at this size) or a smaller image size."
            if fits
            else "Even one candidate is over the cap: use a smaller image size."
        )
    )
