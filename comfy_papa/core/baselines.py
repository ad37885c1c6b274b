"""Losses of the benchmark baselines: Diffusion-KTO, Diffusion-DPO and D3PO.

Errors are per-sample x0-space (or eps-space) denoising errors like `objective.denoise_error`,
`*_ref` the same error of the frozen reference model on the same noised input.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def diffusion_kto_loss(
    err: Tensor, err_ref: Tensor, labels: Tensor, beta: float = 1000.0
) -> Tensor:
    """Diffusion-KTO (Li et al., arXiv 2404.04465): Kahneman-Tversky utility of the implicit reward.

    Implicit reward g = err_ref - err; reference point z = max(0, sg(mean g)) over the labelled
    samples of the batch.
    Liked: 1 - sigmoid(beta (g - z)); disliked: 1 - sigmoid(beta (z - g)); mean over labelled
    samples (label 0 is ignored).
    """
    mask = labels != 0
    if not bool(mask.any()):
        raise ValueError("diffusion_kto_loss needs at least one liked or disliked sample.")
    g = err_ref - err
    z = g.detach()[mask].mean().clamp(min=0)
    utility = torch.sigmoid(beta * labels.sign() * (g - z))
    return (1 - utility)[mask].mean()


def diffusion_dpo_loss(
    err_w: Tensor, ref_w: Tensor, err_l: Tensor, ref_l: Tensor, beta: float
) -> Tensor:
    """Diffusion-DPO (Wallace et al., arXiv 2311.12908, Eq. 14), with the T omega(lambda_t)
    factor folded into beta: -log sigmoid(-beta/2 ((err_w - ref_w) - (err_l - ref_l))), mean over
    pairs (w preferred, l rejected)."""
    return -F.logsigmoid(-beta / 2 * ((err_w - ref_w) - (err_l - ref_l))).mean()


def d3po_loss(
    logp_w: Tensor,
    logp_w_ref: Tensor,
    logp_l: Tensor,
    logp_l_ref: Tensor,
    beta: float = 0.1,
    ratio_clip: float = 0.1,
) -> Tensor:
    """D3PO (Yang et al., CVPR 2024, Eq. 9/10): per denoising step,
    -log sigmoid(beta (log pi/pi_ref (w) - log pi/pi_ref (l))), mean over pairs.

    As in the authors' training, each probability ratio pi/pi_ref is clipped to
    [1 - ratio_clip, 1 + ratio_clip] (no gradient outside), which keeps steps near the sampler.
    """
    lo, hi = math.log1p(-ratio_clip), math.log1p(ratio_clip)
    log_ratio_w = (logp_w - logp_w_ref).clamp(lo, hi)
    log_ratio_l = (logp_l - logp_l_ref).clamp(lo, hi)
    return -F.logsigmoid(beta * (log_ratio_w - log_ratio_l)).mean()


def gaussian_step_logprob(x_prev: Tensor, mean: Tensor, std: Tensor | float) -> Tensor:
    """Log density of a Gaussian denoising step x_prev ~ N(mean, std^2 I), summed over non-batch
    dims: sum(-(x - mu)^2 / (2 std^2) - log std - log(2 pi) / 2)."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device).expand_as(mean)
    logp = -(x_prev - mean).square() / (2 * std.square()) - std.log() - 0.5 * math.log(2 * math.pi)
    return logp.flatten(1).sum(dim=1)


def pair_likes_dislikes(labels: Tensor, rounds: Tensor | None = None) -> list[tuple[int, int]]:
    """All (liked, disliked) index pairs; with `rounds`, only pairs from the same round (D3PO
    pairs share a prompt and starting noise, so they must come from one batch of candidates)."""
    likes = torch.nonzero(labels > 0).flatten().tolist()
    dislikes = torch.nonzero(labels < 0).flatten().tolist()
    return [
        (w, lo)
        for w in likes
        for lo in dislikes
        if rounds is None or int(rounds[w]) == int(rounds[lo])
    ]
