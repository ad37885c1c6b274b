"""The digits benchmark's baselines as training rounds on the pack's own adapters and replay.

Each class overrides `make_batch` and `compute_loss` of the backend-neutral round
(`comfy_papa.core.round.RoundLoop`), so a baseline trains the same LoRA adapters, on the same
replayed labels, with the same optimizer, sampler and model as PAPA, on either backend; only the
objective differs. The losses are comfy_papa.core.baselines'. `configured` binds a baseline's own
hyper-parameters (beta, ...), which the fine-tune settings do not carry, to a subclass that both
`comfy_papa.host.rounds.finetune(..., round_cls=...)` and
`comfy_papa.diffusers.PapaSession.finetune(round_cls=...)` accept. A batch carries, per pair,
`idx` (the timestep index: the diffusers denoiser's input) and `sigma` (ComfyUI's).

Noise levels: both backends see an epsilon model as x = x0 + sigma eps. The DDPM quantities follow
from abar_t = 1 / (1 + sigma_t^2) (comfy_papa.core.schedule), SNR_t = 1 / sigma_t^2.
"""

from __future__ import annotations

import math

import torch

from comfy_papa.core.baselines import (
    d3po_loss,
    diffusion_kto_loss,
    gaussian_step_logprob,
    pair_likes_dislikes,
)
from comfy_papa.core.objective import denoise_error
from comfy_papa.core.replay import GROUP_KEY
from comfy_papa.core.round import RoundLoop
from comfy_papa.core.schedule import snr


def configured(cls: type[RoundLoop], **params) -> type[RoundLoop]:
    """A subclass of `cls` with `params` as class attributes (its hyper-parameters)."""
    unknown = sorted(set(params) - set(getattr(cls, "PARAMS", ())))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no hyper-parameters {unknown}; it takes {cls.PARAMS}."
        )
    return type(cls.__name__, (cls,), dict(params))


def _require_eps(kind: str) -> None:
    """The baselines' errors are in epsilon units, SNR_t ||x0 - x0_hat||^2 for x = x0 + sigma eps:
    the noising of ComfyUI's epsilon and v-prediction models alike (v is only what the network
    outputs), so both are accepted."""
    if kind not in ("eps", "v"):
        raise ValueError(
            f"the digits baselines are written for epsilon and v models (x = x0 + sigma eps), "
            f"not {kind!r}."
        )


class KTORound(RoundLoop):
    """Diffusion-KTO (Li et al. 2024, arXiv 2404.04465, Sec. 3: the KTO utility of the per-step
    implicit reward), through `core.baselines.diffusion_kto_loss`:

        L = mean_i [1 - sigmoid(beta * y_i * (g_i - z))],  g_i = e_ref,i - e_theta,i,
        z = max(0, sg(mean_batch g)),  e = ||eps - eps_hat(x_t, t)||^2 (mean over pixels)

    with one timestep per sample, uniform over the whole training schedule (the paper's
    t ~ U{1..T}), one noise draw, and a replay minibatch of liked (y = +1) and disliked (y = -1)
    candidates. Errors are in eps space: the backends return x0, and for x = x0 + sigma eps
    ||eps - eps_hat||^2 = SNR_t ||x0 - x0_hat||^2.

    beta: the paper's scale, 1000 (per-pixel-mean eps errors, as for SD latents). On the digits
    model with rank-8 LoRA at lr 1e-4, |beta (g - z)| was ~1 after the first optimizer step and
    5-20 after a round: sigmoids in their working range, partly saturating as the adapter moves
    away from the reference. At lr 5e-4 it reached ~60 within one round (saturated: the loss
    stops teaching). `beta_margin` in the stats (mean |beta (g - z)|) is the check.
    """

    PARAMS = ("beta",)
    beta = 1000.0

    def make_batch(self, gen, x0_all, labels_all, groups_all, sigmas, kind, device) -> dict:
        _require_eps(kind)
        idx = self.replay.sample(self.settings.batch_size, gen).to(device)
        t = torch.randint(0, len(sigmas), (len(idx),), generator=gen)
        noise = torch.randn((len(idx), *x0_all.shape[1:]), generator=gen)
        sig = sigmas[t]
        return {
            "x0": x0_all[idx],
            "labels": labels_all[idx],
            "cond": {GROUP_KEY: groups_all[idx]},
            "sigma": sig.to(device),
            "idx": t.to(device),
            "snr": snr(sig, "eps").to(device, torch.float32),
            "noise": noise.to(device),
        }

    def compute_loss(self, b: dict, x0_pred, x0_base):
        err = denoise_error(x0_pred, b["x0"]) * b["snr"]
        err_ref = denoise_error(x0_base, b["x0"]) * b["snr"]
        loss = diffusion_kto_loss(err, err_ref, b["labels"], self.beta)
        with torch.no_grad():
            g = err_ref - err
            z = g.mean().clamp(min=0)
            margin = (self.beta * (g - z)).abs().mean()
        return loss, {
            "loss": loss.item(),
            "beta_margin": margin.item(),
            "n_like": int((b["labels"] > 0).sum()),
            "n_dislike": int((b["labels"] < 0).sum()),
        }


def ddpm_posterior(sigma_t, sigma_prev):
    """q(x_s | x_t, x0), s < t, of a discrete DDPM (Ho et al. 2020, Eq. 6-7, with
    alpha_t = abar_t / abar_s, so also for a jump of several timesteps): mean = c0 x0 + ct x_t,
    variance beta_tilde, in the variance-preserving x_t = sqrt(abar_t) (x0 + sigma_t eps).
    Returns (c0, ct, beta_tilde)."""
    abar_t = 1 / (1 + sigma_t.square())
    abar_prev = 1 / (1 + sigma_prev.square())
    alpha_t = abar_t / abar_prev
    beta_t = 1 - alpha_t
    c0 = abar_prev.sqrt() * beta_t / (1 - abar_t)
    ct = alpha_t.sqrt() * (1 - abar_prev) / (1 - abar_t)
    return c0, ct, beta_t * (1 - abar_prev) / (1 - abar_t)


class D3PORound(RoundLoop):
    """D3PO (Yang et al., CVPR 2024, Eq. 9/10) through `core.baselines.d3po_loss`: per denoising
    step, for a pair (w liked, l disliked) that shares a timestep t and its noise,

        L = -log sigmoid(beta [clip log pi_theta/pi_ref (x^w_s | x^w_t)
                               - clip log pi_theta/pi_ref (x^l_s | x^l_t)])

    with each log-ratio clipped to [log(1 - c), log(1 + c)] (c = ratio_clip, the authors' 0.1).
    Pairs are every (liked, disliked) couple labelled in the same round (pair_likes_dislikes with
    rounds; one round's candidates share the prompt and sampler), a replay minibatch of
    `batch_size` pairs per step.

    Deviation from the paper: D3PO stores each image's sampling trajectory and scores its actual
    steps. The candidate sampler stores only the final x0, so the step is rebuilt from the forward
    process: t uniform on jump..T-1, x_t = sqrt(abar_t) (x0 + sigma_t eps), and x_s, s = t - jump,
    drawn from the DDPM posterior q(x_s | x_t, x0) (`ddpm_posterior`: the step an ideal denoiser
    would take, an eta = 1 DDIM step). jump = T // sampling_steps is the sampler's stride (50 for
    20 steps), so a scored step is as large as the candidates' sampler steps. Larger jumps
    are more sensitive to the model, not less (c0^2 / beta_tilde = SNR_s - SNR_t): at lr 5e-4 every
    log-ratio left the clip range after one optimizer step, so the learning rate is what keeps
    them near it (see FINETUNE in bench/digits.py). pi(x_s | x_t) is the model's Gaussian reverse
    step N(c0 x0_hat + ct x_t, beta_tilde I) with x0_hat its denoised prediction, scored by
    `gaussian_step_logprob` for the adapted model and the frozen base (the reference), in float64
    because the two log densities are large and nearly equal. The noises eps and the posterior
    draw are shared within a pair, as D3PO's pairs share x_T and the sampler's noise.
    """

    PARAMS = ("beta", "ratio_clip", "sampling_steps")
    beta = 0.1
    ratio_clip = 0.1
    sampling_steps = 20

    def make_batch(self, gen, x0_all, labels_all, groups_all, sigmas, kind, device) -> dict:
        _require_eps(kind)
        pairs = pair_likes_dislikes(self.replay.labels, self.replay.rounds)
        if not pairs:
            raise ValueError("D3PO needs a liked and a disliked candidate from the same round.")
        pick = torch.randperm(len(pairs), generator=gen)[: self.settings.batch_size]
        chosen = torch.tensor([pairs[i] for i in pick.tolist()])
        n = len(chosen)
        jump = max(1, len(sigmas) // self.sampling_steps)
        # Layout: the n winners, then the n losers; pair k is (k, n + k).
        idx = torch.cat([chosen[:, 0], chosen[:, 1]]).to(device)
        t = torch.randint(jump, len(sigmas), (n,), generator=gen).repeat(2)
        shape = (n, *x0_all.shape[1:])
        noise = torch.randn(shape, generator=gen).repeat(2, *([1] * (len(shape) - 1)))
        z = torch.randn(shape, generator=gen).repeat(2, *([1] * (len(shape) - 1)))
        return {
            "x0": x0_all[idx],
            "labels": labels_all[idx],
            "cond": {GROUP_KEY: groups_all[idx]},
            "sigma": sigmas[t].to(device),
            "idx": t.to(device),
            "sigma_prev": sigmas[t - jump].to(device),
            "noise": noise.to(device),
            "z": z.to(device),
        }

    def compute_loss(self, b: dict, x0_pred, x0_base):
        f64 = torch.float64
        c0, ct, var = ddpm_posterior(b["sigma"].to(f64), b["sigma_prev"].to(f64))
        view = (-1, *([1] * (b["x0"].ndim - 1)))
        c0, ct, std = c0.view(view), ct.view(view), var.sqrt().view(view)
        x0 = b["x0"].to(f64)
        abar_t = 1 / (1 + b["sigma"].to(f64).square())
        x_t = abar_t.sqrt().view(view) * (x0 + b["sigma"].to(f64).view(view) * b["noise"].to(f64))
        x_prev = c0 * x0 + ct * x_t + std * b["z"].to(f64)
        logp = gaussian_step_logprob(x_prev, c0 * x0_pred.to(f64) + ct * x_t, std)
        logp_ref = gaussian_step_logprob(x_prev, c0 * x0_base.to(f64) + ct * x_t, std)
        n = len(logp) // 2
        loss = d3po_loss(
            logp[:n], logp_ref[:n], logp[n:], logp_ref[n:], self.beta, self.ratio_clip
        ).float()
        with torch.no_grad():
            ratio = (logp - logp_ref).abs()
            clipped = (ratio > math.log1p(self.ratio_clip)).float().mean()
        return loss, {
            "loss": loss.item(),
            "pairs": n,
            "log_ratio_abs": ratio.mean().item(),
            "clipped_fraction": clipped.item(),
        }


def has_pairs(labels: list[float], rounds: list[int]) -> bool:
    """Whether D3PO has anything to train on: a like and a dislike from one round."""
    return bool(pair_likes_dislikes(torch.tensor(labels, dtype=torch.float), torch.tensor(rounds)))


ROUNDS = {"kto": KTORound, "d3po": D3PORound}
