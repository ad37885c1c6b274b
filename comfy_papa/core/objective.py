"""The PAPA objective, estimated by Monte Carlo over timesteps, with bounded dislikes.

Reference objective per candidate x0 with label y (PAPA, Sarkar et al. 2026):

    L = c_pref * y * sum_t w_t ||x0 - x0_theta(x_t, t)||^2
      + c_sim * [y > 0] * SNR_t ||x0_theta(x_t, t) - x0_base(x_t, t)||^2

with w_t the x0-space ELBO weights of `schedule.elbo_weights`. We estimate the sum with a few
importance-sampled timesteps per sample, average the similarity ("QPDE") term over the same
timesteps, and cap the dislike term (see `bounded_dislike`).
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .schedule import (
    MODEL_KINDS,
    VARIANCE_EXPLODING_KINDS,
    ModelKind,
    check_cut,
    cut_index,
    elbo_weights,
    gaussian_denoise_error,
    sample_timesteps,
    snr,
    timestep_proposal,
)

WEIGHTINGS = ("elbo", "snr")
# Model kinds whose x0 prediction moves at most as much as the network's output (v: x0 =
# c_skip x - sigma / sqrt(1 + sigma^2) v): there the snr_floor is measured and applied. An epsilon
# model's x0 moves by sigma times its output, so a floor in x0 units is sigma^2 times stronger in
# its own units at the noisy end (a tiny diffusers epsilon model learned brightness 0.56 -> 0.62
# with the floor, 0.56 -> 0.87 without): for the other kinds the floor is not applied.
FLOORED_KINDS = ("v",)


@dataclass(frozen=True)
class PapaConfig:
    """Hyper-parameters of the PAPA loss. The defaults are the reference code's objective (ELBO
    weights, c_pref 0.1, c_sim 0.009); `core.settings.FinetuneSettings` holds the tuned ones.

    weighting "elbo": x0-space ELBO weights w_t, importance-sampled (`mc_timestep_batch`), and the
    similarity term at SNR_t on likes only, as in the reference.
    weighting "snr": one weight per timestep for every term, lambda_t = min(SNR_t, snr_gamma) in x0
    space (the min-SNR-gamma weighting, Hang et al. 2023: plain epsilon MSE at the noisy end, the
    x0 error capped at the clean end), timesteps stratified uniformly over the trained part of the
    schedule. The preference, similarity (to the base model, likes) and trust (to the previous
    round, every labelled sample) terms then share their units, so at each timestep the optimum of
    like + similarity is a fixed blend of the liked sample and the base model's prediction, and
    the noisy timesteps that decide composition get as much attention as the clean ones.
    snr_floor (weighting "snr" only): lambda_t = clamp(SNR_t, snr_floor, snr_gamma). Plain
    min-SNR gives the noisiest timesteps an x0 weight of SNR_t (about 0.01 at t = 600 on a DDPM
    schedule, 1e-4 at t = 900): the steps where a sample's identity is chosen barely learn. A floor
    of 0.05 lets them learn (digits, {1,4,7,9}, 3 seeds: 0.55 -> 0.87 preferred after 50 labels);
    higher floors pull every sample onto the easiest liked class (0.1: entropy 0.55). Applied to
    v-prediction models only (`FLOORED_KINDS`).
    """

    c_pref: float = 0.1
    c_sim: float = 0.009
    dislike_weight: float = 0.5
    dislike_cap: float = 1.5
    timesteps_per_sample: int = 4
    cut: float = 0.0
    c_anchor: float = 0.0
    anchor_timesteps: int = 0
    weighting: str = "elbo"
    snr_gamma: float = 5.0
    c_trust: float = 0.0
    dislike_from: float = 0.0
    snr_floor: float = 0.0

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"weighting must be one of {WEIGHTINGS} ('snr' = the tuned default, 'elbo' = the "
                f"reference code's), got {self.weighting!r}."
            )
        if not self.snr_gamma > 0:
            raise ValueError(f"snr_gamma must be > 0 (5 is the usual value), got {self.snr_gamma}.")
        if not 0 <= self.snr_floor <= self.snr_gamma:
            raise ValueError(
                f"snr_floor must be in [0, snr_gamma = {self.snr_gamma}] (0: plain min-SNR), got "
                f"{self.snr_floor}."
            )
        for name in ("c_pref", "c_sim", "dislike_weight", "c_anchor", "c_trust"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.dislike_cap <= 0:
            raise ValueError(
                f"dislike_cap must be > 0 (multiple of the base model's error), got "
                f"{self.dislike_cap}; 1.5 is a stable default."
            )
        if self.timesteps_per_sample < 1:
            raise ValueError(f"timesteps_per_sample must be >= 1, got {self.timesteps_per_sample}.")
        if self.anchor_timesteps < 0:
            raise ValueError(f"anchor_timesteps must be >= 0, got {self.anchor_timesteps}.")
        if self.c_anchor > 0 and self.anchor_timesteps == 0:
            raise ValueError(
                "c_anchor > 0 needs anchor_timesteps >= 1 (the timesteps the anchor is "
                "evaluated at); set anchor_timesteps to 1, or c_anchor to 0."
            )
        check_cut(self.cut)
        if not 0.0 <= self.dislike_from < 1.0:
            raise ValueError(
                f"dislike_from must be in [0, 1) (the fraction of the schedule, from the clean "
                f"end, where dislikes do not act), got {self.dislike_from}."
            )


def noise_x(x0: Tensor, noise: Tensor, sigma: Tensor, kind: ModelKind) -> Tensor:
    """Forward noising: x = x0 + sigma eps (eps, v, x0) or x = sigma eps + (1 - sigma) x0 (flow).

    `sigma` has one entry per batch element.
    """
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    if kind in VARIANCE_EXPLODING_KINDS:
        return x0 + s * noise
    if kind == "flow":
        return s * noise + (1 - s) * x0
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}.")


def denoise_error(x0_pred: Tensor, x0: Tensor) -> Tensor:
    """Per-sample x0-space denoising error mean((x0_pred - x0)^2) over non-batch dims."""
    return (x0_pred - x0).square().flatten(1).mean(dim=1)


def bounded_dislike(err: Tensor, err_base: Tensor, cap: float) -> Tensor:
    """Capped dislike error min(err, cap * sg(err_base)), sg = stop-gradient.

    The reference does unbounded gradient ascent on the denoising loss of disliked samples, which
    diverges (a prototype collapsed to 1% preferred samples). Capping at `cap` times the frozen base
    model's error on the same noised input stops the push once the model is already `cap` times
    worse than the base there: beyond the cap the gradient is zero and -min(...) is bounded below.
    """
    return torch.minimum(err, cap * err_base.detach())


def papa_loss(
    x0_pred: Tensor,
    x0_base: Tensor,
    x0: Tensor,
    snr_t: Tensor,
    coef: Tensor,
    labels: Tensor,
    cfg: PapaConfig,
    anchor: Tensor | None = None,
    x0_ref: Tensor | None = None,
    dislike_scale: float = 1.0,
    dislike_on: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Monte-Carlo PAPA loss over (sample, timestep) pairs, averaged over samples.

    Inputs are flat over pairs, grouped as M = cfg.timesteps_per_sample preference pairs plus
    A = cfg.anchor_timesteps anchor pairs per sample (the layout of `mc_timestep_batch`; `anchor`
    marks the anchor pairs, needed when A > 0). Per preference pair with label y,
    e = ||x0 - x0_pred||^2 and e_base = ||x0 - x0_base||^2:

        c_pref * (max(y, 0) coef e - max(-y, 0) dislike_weight coef min(e, cap e_base))
      + c_sim * [y > 0] * SNR_t ||x0_pred - x0_base||^2 / M

    coef = w_t / (M q_t) makes the sum over a sample's pairs an unbiased estimate of the full
    sum over t of the ELBO-weighted term; the similarity (QPDE) term is its mean over the same
    timesteps (eps-space, via SNR_t). The total is divided by the number of samples, not pairs, so
    the loss scale does not depend on M. Labels of 0 (skip) contribute nothing.

    Anchor pairs (t uniform on the trained part of the schedule) add, for every labelled sample,

        c_anchor * ||x0_pred - x0_base||^2 / A

    an x0-space trust region. Why: the ELBO weight of the x0 error, SNR_{t-1} - SNR_t, is ~1e-5 at
    the noisiest timesteps, so the preference term neither trains nor constrains them; yet a
    sampler's first steps take most of their update from the x0 predicted there (an Euler step
    from sigma_i to sigma_{i+1} moves x by (1 - sigma_{i+1}/sigma_i) (x0_hat - x)), and an
    epsilon model's x0 moves by sigma times any change of its epsilon. An adapter trained on clean
    timesteps then drifts unchecked at sigma ~ 100 and the samples leave the data range (seen on
    the digits model: PAPA without it went from 0.38 to 0.00 liked). Measured in x0 space the
    anchor is ~sigma^2 strong at high noise and negligible at low noise, where PAPA learns.

    With cfg.weighting "snr" (coef = min(SNR_t, gamma) / M from `mc_timestep_batch`) every term
    carries the same per-pair weight coef:

        c_pref * (max(y, 0) e - dislike_scale * max(-y, 0) dislike_weight min(e, cap e_base)) coef
      + c_sim * [y > 0] * coef ||x0_pred - x0_base||^2
      + c_trust * [y != 0] * coef ||x0_pred - x0_ref||^2

    x0_ref is the previous round's prediction (None: the base model's, as in a first round): a
    trust region around where this round started, on likes and dislikes alike, so one round moves
    the model a bounded amount at every noise level whatever its minibatches say.
    `dislike_scale` (the caller's like/dislike balance, `core.round.dislike_scale`) scales the
    dislike term; 0 leaves a round with no likes to the trust region alone. `dislike_on` (bool
    per pair, `mc_timestep_batch`'s "dislike_on") limits the dislike term to the timesteps at or
    above cfg.dislike_from: a dislike says "not this picture", which is decided at the noisy
    steps; pushing the error up at the clean ones only teaches the model to draw worse.
    """
    m = cfg.timesteps_per_sample
    per = m + cfg.anchor_timesteps
    if len(labels) % per:
        raise ValueError(
            f"got {len(labels)} pairs, not a multiple of timesteps_per_sample + anchor_timesteps "
            f"= {per}; build the batch with mc_timestep_batch using the same PapaConfig."
        )
    if anchor is None:
        if cfg.anchor_timesteps:
            raise ValueError("anchor_timesteps > 0: pass the batch's `anchor` mask to papa_loss.")
        anchor = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    n_samples = len(labels) // per
    pref = (~anchor).to(labels.dtype)
    err = denoise_error(x0_pred, x0)
    err_base = denoise_error(x0_base, x0)
    like = labels.clamp(min=0) * pref
    dislike = (-labels).clamp(min=0) * pref
    if dislike_on is not None:
        dislike = dislike * dislike_on.to(dislike.dtype)
    like_loss = cfg.c_pref * (like * coef * err).sum() / n_samples
    dislike_loss = (
        -cfg.c_pref
        * cfg.dislike_weight
        * dislike_scale
        * (dislike * coef * bounded_dislike(err, err_base, cfg.dislike_cap)).sum()
        / n_samples
    )
    drift = denoise_error(x0_pred, x0_base.detach())  # x0-space distance from the base model
    if cfg.weighting == "snr":
        sim_loss = cfg.c_sim * ((labels > 0) * pref * coef * drift).sum() / n_samples
    else:
        sim_loss = cfg.c_sim * ((labels > 0) * pref * drift * snr_t).sum() / m / n_samples
    loss = like_loss + dislike_loss + sim_loss
    parts = {"like_loss": like_loss, "dislike_loss": dislike_loss, "sim_loss": sim_loss}
    if cfg.c_trust > 0:
        step = drift if x0_ref is None else denoise_error(x0_pred, x0_ref.detach())
        weight = coef if cfg.weighting == "snr" else snr_t / m
        trust_loss = cfg.c_trust * ((labels != 0) * pref * weight * step).sum() / n_samples
        loss = loss + trust_loss
        parts["trust_loss"] = trust_loss
    # How far the model is from the base here, in capped epsilon units (for the progress display).
    parts["drift"] = (pref * drift * snr_t.clamp(max=5.0)).sum() / pref.sum().clamp(min=1)
    if cfg.anchor_timesteps:
        anchor_loss = (
            (cfg.c_anchor * ((labels != 0) & anchor).to(drift.dtype).mul(drift).sum())
            / cfg.anchor_timesteps
            / n_samples
        )
        loss = loss + anchor_loss
        parts["anchor_loss"] = anchor_loss
    parts["loss"] = loss
    parts["n_like"] = (labels > 0).sum() / per
    parts["n_dislike"] = (labels < 0).sum() / per
    # One device->host copy for all the numbers (each .item() is a GPU sync).
    values = torch.stack([v.detach().float() for v in parts.values()]).tolist()
    stats = dict(zip(parts, values, strict=True))
    stats["n_like"], stats["n_dislike"] = round(stats["n_like"]), round(stats["n_dislike"])
    return loss, stats


def stratified_timesteps(T: int, cut: float, n: int, m: int, generator: torch.Generator) -> Tensor:
    """[n, m] timesteps on t >= cut_index(T, cut): for each row one draw in each of m equal
    strata, in a random order per row (uniform marginals, lower variance than m i.i.d. draws)."""
    device = generator.device
    k = cut_index(T, cut)
    span = T - k
    u = torch.rand(n, m, generator=generator, device=device, dtype=torch.float64)
    strata = torch.stack([torch.randperm(m, generator=generator, device=device) for _ in range(n)])
    return (k + ((strata + u) * span / m).floor().long()).clamp(max=T - 1)


def mc_timestep_batch(
    x0: Tensor,
    cond: Mapping[str, Tensor] | None,
    labels: Tensor,
    sigmas: Tensor,
    kind: ModelKind,
    cfg: PapaConfig,
    generator: torch.Generator,
    share: Tensor | None = None,
) -> dict:
    """Expand B samples into B * M (sample, timestep) pairs for `papa_loss`.

    `share` (optional, [B] indices): sample j uses the timesteps and noise drawn for sample
    share[j] (common random numbers; share[j] = j draws its own). A liked and a disliked sample
    noised with the same noise at the same timestep differ only in x0, so at high noise, where
    the model sees nearly the same input, the noise of the two denoising errors cancels in their
    difference and the gradient is the clean contrast "towards the liked, away from the disliked"
    (the variance reduction that paired objectives such as Diffusion-DPO rely on).

    weighting "snr": each sample gets M stratified uniform timesteps on t >= cut
    (`stratified_timesteps`) and coef = min(SNR_t, snr_gamma) / M. weighting "elbo":
    each sample gets M = cfg.timesteps_per_sample independent timesteps t ~ q on t >= cut, with
    q_t proportional to w_t / (1 + SNR_t): the ELBO weight times the error scale of an ideal
    denoiser (`gaussian_denoise_error`). q proportional to w_t alone would put nearly all draws at
    the cleanest timesteps (w_t ~ SNR_t there) and almost never visit the noisy ones, where
    content is decided. Random draws (timesteps, then noise) use `generator`, on its device.

    With A = cfg.anchor_timesteps > 0, each sample's M pairs are followed by A anchor pairs with
    t uniform on t >= cut (coef 0; see `papa_loss`), drawn after all the preference timesteps so
    that A = 0 draws exactly what it always did.

    Returns x0, cond, labels repeated per pair, and per pair: sigma, idx (timestep), coef
    (Monte-Carlo coefficient), snr, noise (standard normal, shaped like x0), source (index of
    the sample in the input batch) and anchor (bool). The host noises x0 with its own noise
    scaling.
    """
    device = generator.device
    m, a = cfg.timesteps_per_sample, cfg.anchor_timesteps
    sig = sigmas.to(device)
    snr_all = snr(sig.double(), kind)
    if cfg.weighting == "snr":
        idx = stratified_timesteps(len(sig), cfg.cut, len(x0), m, generator)
        floor = cfg.snr_floor if kind in FLOORED_KINDS else 0.0
        lam = snr_all[idx].clamp(min=floor, max=cfg.snr_gamma)
        coef = lam.to(sig.dtype) / m
    else:
        weights = elbo_weights(sig, kind)
        q = timestep_proposal(weights * gaussian_denoise_error(snr_all).to(weights.dtype), cfg.cut)
        draws = [sample_timesteps(q, m, generator, weights) for _ in range(len(x0))]
        idx = torch.stack([d[0] for d in draws])
        coef = torch.stack([d[1] for d in draws])
    is_anchor = torch.zeros(len(x0), m, dtype=torch.bool, device=device)
    if a:
        k = cut_index(len(sig), cfg.cut)
        anchor_idx = torch.randint(k, len(sig), (len(x0), a), generator=generator, device=device)
        idx = torch.cat([idx, anchor_idx], dim=1)
        coef = torch.cat([coef, torch.zeros(len(x0), a, dtype=coef.dtype, device=device)], dim=1)
        is_anchor = torch.cat(
            [is_anchor, torch.ones(len(x0), a, dtype=torch.bool, device=device)], dim=1
        )
    per = m + a
    x0_rep = x0.repeat_interleave(per, dim=0)
    noise = torch.randn(x0_rep.shape, generator=generator, device=device, dtype=x0.dtype)
    if share is not None:
        src = share.to(device)
        idx, coef = idx[src], coef[src]
        noise = noise.reshape(len(x0), per, *x0.shape[1:])[src].reshape(x0_rep.shape)
    idx, coef, is_anchor = idx.flatten(), coef.flatten(), is_anchor.flatten()
    source = torch.arange(len(x0), device=device).repeat_interleave(per)
    target = x0.device
    return {
        "x0": x0_rep,
        "cond": None
        if cond is None
        else {k: v.repeat_interleave(per, dim=0) for k, v in cond.items()},
        "labels": labels.repeat_interleave(per).to(x0.dtype),
        "sigma": sig[idx].to(target),
        "idx": idx.to(target),
        "coef": coef.to(target, x0.dtype),
        "snr": snr_all[idx].to(target, x0.dtype),
        "noise": noise.to(target),
        "source": source.to(target),
        "anchor": is_anchor.to(target),
        "dislike_on": (idx >= cut_index(len(sig), cfg.dislike_from)).to(target),
    }
