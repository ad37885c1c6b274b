"""Noise schedules in sigma space: SNR, ELBO timestep weights, and the EPAPA cut.

Conventions. A model family ("kind") fixes how a clean latent x0 is noised at level sigma:

- "eps", "v" and "x0" (variance preserving, ComfyUI's EPS / V_PREDICTION / X0):
  x = x0 + sigma * eps, so SNR = 1 / sigma^2 and sigma_t = sqrt((1 - abar_t) / abar_t) for a
  discrete DDPM schedule. The three differ only in what the network outputs (noise, velocity,
  the clean latent); the host turns that output into x0, so the core treats them alike and the
  kind names what was trained.
- "flow" (rectified flow, ComfyUI's CONST): x = sigma * eps + (1 - sigma) * x0, so
  SNR = ((1 - sigma) / sigma)^2.

`sigmas` is always the model's discrete training schedule, increasing, length T: sigmas[0] is the
least noise. Errors are measured on the denoised prediction (x0 space), as ComfyUI models return
x0. In both families ||eps - eps_hat||^2 = SNR * ||x0 - x0_hat||^2, which links x0-space weights to
the eps-space weights of the DDPM papers.
"""

import math
from typing import Literal

import torch
from torch import Tensor

ModelKind = Literal["eps", "v", "x0", "flow"]
MODEL_KINDS: tuple[str, ...] = ("eps", "v", "x0", "flow")
# Kinds noised as x = x0 + sigma * eps (SNR = 1 / sigma^2).
VARIANCE_EXPLODING_KINDS: tuple[str, ...] = ("eps", "v", "x0")


def _check_sigmas(sigmas: Tensor) -> None:
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError(
            f"sigmas must be a 1-D schedule with at least 2 entries, got shape "
            f"{tuple(sigmas.shape)}; pass the model's discrete training schedule "
            "(ComfyUI: model_sampling.sigmas)."
        )
    if not bool((sigmas[1:] > sigmas[:-1]).all()) or not bool((sigmas > 0).all()):
        raise ValueError(
            "sigmas must be positive and strictly increasing (sigmas[0] = least noise); "
            "pass the training schedule (model_sampling.sigmas), not a sampler's descending "
            "sigma list."
        )


def snr(sigmas: Tensor, kind: ModelKind) -> Tensor:
    """Signal-to-noise ratio: 1/sigma^2 for eps/v/x0 (x = x0 + sigma eps), ((1-sigma)/sigma)^2 for
    flow (x = sigma eps + (1-sigma) x0)."""
    if kind in VARIANCE_EXPLODING_KINDS:
        return sigmas.reciprocal().square()
    if kind == "flow":
        return ((1 - sigmas) / sigmas).square()
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}.")


def discrete_sigmas_from_betas(betas: Tensor) -> Tensor:
    """DDPM schedule in sigma space: sigma_t = sqrt((1 - abar_t) / abar_t), abar_t = prod(1 - beta)
    (Ho et al. 2020, Eq. 4, divided by sqrt(abar_t))."""
    abar = torch.cumprod(1 - betas, dim=0)
    return ((1 - abar) / abar).sqrt()


def ddpm_reference_weights(betas: Tensor) -> Tensor:
    """Eps-space DDPM ELBO weight of the PAPA reference code, with our t = 0 rule.

    For t >= 1: w_t = (1 - alpha_t) / (alpha_t (1 - abar_{t-1})) (Ho et al. 2020, Eq. 12 with the
    posterior variance beta_tilde_t, up to the constant 1/2 the reference drops).
    For t = 0: w_0 = beta_0^2 / (alpha_0 (1 - abar_0) beta_tilde_1), the same formula with the
    clipped posterior variance beta_tilde_0 := beta_tilde_1 (Nichol & Dhariwal 2021), where
    beta_tilde_1 = beta_1 (1 - abar_0) / (1 - abar_1). The reference instead reads abar_{-1} as
    abar_{T-1} (Python's negative index), a bug.
    """
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)
    weights = betas[1:] / (alphas[1:] * (1 - abar[:-1]))
    beta_tilde_1 = betas[1] * (1 - abar[0]) / (1 - abar[1])
    w0 = betas[0].square() / (alphas[0] * (1 - abar[0]) * beta_tilde_1)
    return torch.cat([w0.reshape(1), weights])


def elbo_weights(sigmas: Tensor, kind: ModelKind) -> Tensor:
    """ELBO weight per discrete timestep on the x0-space squared error: w_t = SNR_{t-1} - SNR_t.

    Derivation (DDPM, Ho et al. 2020 Eq. 12). The eps-space weight is
    r_t = beta_t / (alpha_t (1 - abar_{t-1})), and ||eps - eps_hat||^2 = SNR_t ||x0 - x0_hat||^2
    with SNR_t = abar_t / (1 - abar_t), so the x0-space weight is r_t SNR_t. With
    alpha_t = abar_t / abar_{t-1} and beta_t = (abar_{t-1} - abar_t) / abar_{t-1}:

        r_t SNR_t = (abar_{t-1} - abar_t) / ((1 - abar_{t-1}) (1 - abar_t))
                  = abar_{t-1} / (1 - abar_{t-1}) - abar_t / (1 - abar_t)
                  = SNR_{t-1} - SNR_t,

    which depends on the schedule only through SNR, so it holds for every family (Kingma et al.
    2021, Eq. 14, discrete form).

    t = 0 has no SNR_{-1} (abar_{-1} = 1 gives an infinite weight). We use the clipped posterior
    variance beta_tilde_0 := beta_tilde_1 (Nichol & Dhariwal 2021): eps-space
    r_0 = beta_0^2 / (alpha_0 (1 - abar_0) beta_tilde_1), beta_tilde_1 = beta_1 (1 - abar_0) /
    (1 - abar_1), with abar_t = SNR_t / (1 + SNR_t), alpha_0 = abar_0 = 1 - beta_0 and
    beta_1 = 1 - abar_1 / abar_0. Multiplying by SNR_0 = abar_0 / (1 - abar_0) simplifies to

        w_0 = (1 - abar_1) / ((1 - abar_0) beta_1).

    Computed in float64 (SNR differences cancel) and returned in the dtype of `sigmas`.
    """
    _check_sigmas(sigmas)
    s = snr(sigmas.double(), kind)
    abar = s / (1 + s)
    beta_1 = 1 - abar[1] / abar[0]
    w0 = (1 - abar[1]) / ((1 - abar[0]) * beta_1)
    return torch.cat([w0.reshape(1), s[:-1] - s[1:]]).to(sigmas.dtype)


def gaussian_denoise_error(snr_t: Tensor) -> Tensor:
    """Minimum x0-space MSE for unit-variance Gaussian data at a given SNR: 1 / (1 + SNR).

    Holds for both families (posterior variance sigma^2/(1+sigma^2) for x = x0 + sigma eps, and
    sigma^2/(sigma^2+(1-sigma)^2) for flow). Used as the error scale of a timestep proposal.
    """
    return (1 + snr_t).reciprocal()


def cut_index(T: int, cut: float) -> int:
    """EPAPA cut: first trained timestep floor(cut * T); the fraction `cut` of the schedule at the
    clean end is left to the base model (reference epapa_k = 400 of T = 1000 is cut = 0.4)."""
    check_cut(cut)
    return math.floor(cut * T)


def check_cut(cut: float) -> None:
    """The one rule for an EPAPA cut: a fraction in [0, 1) of the schedule."""
    if not 0.0 <= cut < 1.0:
        raise ValueError(
            f"cut must be a fraction in [0, 1) of the schedule from the clean end, got {cut}; "
            "use 0 for plain PAPA, e.g. 0.4 for EPAPA."
        )


def sigma_cut(sigmas: Tensor, cut: float) -> float:
    """Noise level at the EPAPA cut: the fine-tuned model denoises sigma >= sigma_cut."""
    return float(sigmas[cut_index(len(sigmas), cut)])


def timestep_proposal(weights: Tensor, cut: float = 0.0) -> Tensor:
    """Importance-sampling proposal q_t = w_t / sum_{s >= k} w_s on t >= k = cut_index, 0 below."""
    k = cut_index(len(weights), cut)
    q = weights.clone()
    q[:k] = 0
    return q / q.sum()


def sample_timesteps(
    q: Tensor, n: int, generator: torch.Generator, weights: Tensor
) -> tuple[Tensor, Tensor]:
    """Draw n timesteps t_i ~ q (with replacement) and coefficients coef_i = w_{t_i} / (n q_{t_i}).

    sum_i coef_i f(t_i) is an unbiased estimate of sum_{t: q_t > 0} w_t f(t) (importance
    sampling); with q proportional to w it is (W / n) sum_i f(t_i), W = sum of w over the support.
    """
    idx = torch.multinomial(q, n, replacement=True, generator=generator)
    coef = weights[idx] / q[idx] / n
    return idx, coef
