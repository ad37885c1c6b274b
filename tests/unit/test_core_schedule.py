import math

import pytest
import torch

from comfy_papa.core.schedule import (
    cut_index,
    ddpm_reference_weights,
    discrete_sigmas_from_betas,
    elbo_weights,
    gaussian_denoise_error,
    sample_timesteps,
    sigma_cut,
    snr,
    timestep_proposal,
)

T = 1000


@pytest.fixture
def betas() -> torch.Tensor:
    return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)


def flow_sigmas() -> torch.Tensor:
    return torch.arange(1, T + 1, dtype=torch.float64) / T


def test_discrete_sigmas_match_ddpm_noising(betas):
    abar = torch.cumprod(1 - betas, 0)
    sigmas = discrete_sigmas_from_betas(betas)
    # x_t / sqrt(abar) = x0 + sigma eps  <=>  sigma = sqrt(1 - abar) / sqrt(abar)
    torch.testing.assert_close(sigmas, (1 - abar).sqrt() / abar.sqrt())
    torch.testing.assert_close(snr(sigmas, "eps"), abar / (1 - abar))


def test_flow_snr_is_signal_over_noise_squared():
    sigmas = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    torch.testing.assert_close(
        snr(sigmas, "flow"), torch.tensor([9.0, 1.0, 1 / 9], dtype=torch.float64)
    )


def test_elbo_weights_equal_reference_weights_times_snr_for_t_ge_1(betas):
    sigmas = discrete_sigmas_from_betas(betas)
    ours = elbo_weights(sigmas, "eps")
    expected = ddpm_reference_weights(betas) * snr(sigmas, "eps")
    torch.testing.assert_close(ours[1:], expected[1:], rtol=1e-5, atol=0)


def test_elbo_weight_at_t0_is_clipped_posterior_formula_not_wraparound(betas):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    snr0 = abar[0] / (1 - abar[0])
    beta_tilde_1 = betas[1] * (1 - abar[0]) / (1 - abar[1])
    clipped = betas[0] ** 2 / (alphas[0] * (1 - abar[0]) * beta_tilde_1) * snr0
    wraparound = betas[0] / (alphas[0] * (1 - abar[-1])) * snr0

    w0 = elbo_weights(discrete_sigmas_from_betas(betas), "eps")[0]

    assert math.isfinite(w0) and w0 > 0
    assert w0.item() == pytest.approx(clipped.item(), rel=1e-6)
    assert w0.item() != pytest.approx(wraparound.item(), rel=0.5)
    assert ddpm_reference_weights(betas)[0].item() * snr0.item() == pytest.approx(
        w0.item(), rel=1e-6
    )


def test_v_weights_equal_eps_weights(betas):
    sigmas = discrete_sigmas_from_betas(betas)
    torch.testing.assert_close(elbo_weights(sigmas, "v"), elbo_weights(sigmas, "eps"))


def test_flow_weights_positive_and_finite():
    w = elbo_weights(flow_sigmas(), "flow")
    assert torch.isfinite(w).all() and (w > 0).all()


def test_elbo_weights_reject_descending_sampler_sigmas(betas):
    with pytest.raises(ValueError, match="increasing"):
        elbo_weights(discrete_sigmas_from_betas(betas).flip(0), "eps")


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="kind"):
        snr(torch.ones(3), "img_to_img")


def test_x0_models_are_noised_and_weighted_like_eps_and_v(betas):
    """x0-, eps- and v-predicting models share x = x0 + sigma eps; only the output differs, and
    the host turns that into x0, so SNR and the ELBO weights are the same."""
    sigmas = discrete_sigmas_from_betas(betas)
    for kind in ("v", "x0"):
        assert torch.equal(snr(sigmas, kind), snr(sigmas, "eps"))
        assert torch.equal(elbo_weights(sigmas, kind), elbo_weights(sigmas, "eps"))


def test_cut_index_and_sigma_cut_follow_reference_epapa_k(betas):
    sigmas = discrete_sigmas_from_betas(betas)
    assert cut_index(T, 0.4) == 400
    assert cut_index(T, 0.0) == 0
    assert sigma_cut(sigmas, 0.4) == sigmas[400].item()
    with pytest.raises(ValueError, match="cut"):
        cut_index(T, 1.0)


def test_gaussian_denoise_error_is_posterior_variance_of_unit_gaussian():
    sigma = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    torch.testing.assert_close(gaussian_denoise_error(snr(sigma, "eps")), sigma**2 / (1 + sigma**2))
    s = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    flow_posterior = s**2 / (s**2 + (1 - s) ** 2)
    torch.testing.assert_close(gaussian_denoise_error(snr(s, "flow")), flow_posterior)


def test_proposal_is_zero_below_cut_and_normalised():
    w = torch.rand(T, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.1
    q = timestep_proposal(w, cut=0.4)
    assert (q[:400] == 0).all() and (q[400:] > 0).all()
    assert q.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(q[400:], w[400:] / w[400:].sum())


def test_sample_timesteps_with_cut_never_returns_idx_below_cut(betas):
    w = elbo_weights(discrete_sigmas_from_betas(betas), "eps")
    q = timestep_proposal(w, cut=0.4)
    idx, _ = sample_timesteps(q, 50_000, torch.Generator().manual_seed(1), w)
    assert idx.min().item() >= 400


def test_coef_is_constant_total_weight_over_n_when_q_proportional_to_w(betas):
    w = elbo_weights(discrete_sigmas_from_betas(betas), "eps")
    q = timestep_proposal(w)
    _, coef = sample_timesteps(q, 8, torch.Generator().manual_seed(2), w)
    torch.testing.assert_close(coef, torch.full((8,), w.sum().item() / 8, dtype=w.dtype))


def _importance_estimate(w, q, f, n, seed):
    """One estimate with n draws, and its standard error from the per-draw values."""
    idx, coef = sample_timesteps(q, n, torch.Generator().manual_seed(seed), w)
    per_draw = coef * n * f[idx]
    return (coef * f[idx]).sum().item(), (per_draw.std() / math.sqrt(n)).item()


@pytest.mark.parametrize("cut", [0.0, 0.4])
def test_monte_carlo_estimate_is_unbiased_for_full_elbo_sum(betas, cut):
    sigmas = discrete_sigmas_from_betas(betas)
    w = elbo_weights(sigmas, "eps")
    s = snr(sigmas, "eps")
    t = torch.arange(T, dtype=torch.float64)
    # a smooth per-timestep "error" not proportional to the proposal's error model
    f = gaussian_denoise_error(s) * (1 + 0.5 * torch.sin(t / 37)) + 1e-3 * (t / T) ** 2
    q = timestep_proposal(w * gaussian_denoise_error(s), cut)
    exact = (w * f)[cut_index(T, cut) :].sum().item()

    estimate, se = _importance_estimate(w, q, f, 20_000, seed=3)

    assert abs(estimate - exact) < 3 * se
    assert se < 0.05 * exact  # the check has power: a 15 % bias would fail it
