import math

import pytest
import torch
from torch import nn

from comfy_papa.core.baselines import (
    d3po_loss,
    diffusion_dpo_loss,
    diffusion_kto_loss,
    gaussian_step_logprob,
    pair_likes_dislikes,
)
from comfy_papa.core.objective import (
    PapaConfig,
    bounded_dislike,
    denoise_error,
    mc_timestep_batch,
    noise_x,
    papa_loss,
)
from comfy_papa.core.schedule import (
    cut_index,
    discrete_sigmas_from_betas,
    elbo_weights,
    gaussian_denoise_error,
    snr,
    timestep_proposal,
)

torch.set_num_threads(1)
T = 1000
D = 4


class TinyDenoiser(nn.Module):
    """x0-predicting MLP on D-dim data, conditioned on log sigma (EPS-style input scaling)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(D + 1, 16), nn.Tanh(), nn.Linear(16, D))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        c_in = (1 + sigma**2).rsqrt()[:, None]
        return self.net(torch.cat([x * c_in, sigma.log()[:, None]], dim=1))


@pytest.fixture
def sigmas() -> torch.Tensor:
    return discrete_sigmas_from_betas(torch.linspace(1e-4, 0.02, T, dtype=torch.float64)).float()


def test_noise_x_implements_both_families():
    x0, noise = torch.ones(2, 3), torch.full((2, 3), 2.0)
    sigma = torch.tensor([0.5, 0.25])
    torch.testing.assert_close(noise_x(x0, noise, sigma, "eps")[:, 0], torch.tensor([2.0, 1.5]))
    torch.testing.assert_close(noise_x(x0, noise, sigma, "flow")[:, 0], torch.tensor([1.5, 1.25]))


def test_denoise_error_is_per_sample_mean_square():
    pred = torch.zeros(2, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(denoise_error(pred, target), torch.tensor([1.0, 1.0]))


def test_bounded_dislike_gradient_is_zero_beyond_cap():
    err = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)
    err_base = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    bounded = bounded_dislike(err, err_base, cap=1.5)
    bounded.sum().backward()
    torch.testing.assert_close(bounded.detach(), torch.tensor([1.0, 1.5, 1.5]))
    torch.testing.assert_close(err.grad, torch.tensor([1.0, 0.0, 0.0]))
    assert err_base.grad is None or not err_base.grad.any()


def test_dislike_loss_is_bounded_below_by_cap_times_base_error():
    cfg = PapaConfig(timesteps_per_sample=1, c_sim=0.0)
    x0 = torch.zeros(1, D)
    base = torch.full((1, D), 0.1)
    coef = torch.tensor([2.0])
    for scale in (1.0, 10.0, 1e6):
        loss, _ = papa_loss(base * scale, base, x0, torch.ones(1), coef, torch.tensor([-1.0]), cfg)
        floor = -cfg.c_pref * cfg.dislike_weight * 2.0 * cfg.dislike_cap * 0.01
        assert loss.item() >= floor - 1e-9
    assert loss.item() == pytest.approx(floor)


def _fixed_pairs(m: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(m, D, generator=g)
    sigma = torch.tensor([0.3, 1.0, 3.0, 10.0])[:m]
    x = noise_x(x0, torch.randn(m, D, generator=g), sigma, "eps")
    return x0, x, sigma


def _dislike_only_training(cap: float) -> tuple[float, float]:
    """300 SGD steps on a disliked sample; returns (final error, base error) on the same inputs."""
    model, base = TinyDenoiser(0), TinyDenoiser(0)
    cfg = PapaConfig(timesteps_per_sample=4, dislike_cap=cap, c_sim=0.0)
    x0, x, sigma = _fixed_pairs(4, seed=1)
    coef, labels = torch.full((4,), 0.25), torch.full((4,), -1.0)
    with torch.no_grad():
        x0_base = base(x, sigma)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        loss, _ = papa_loss(model(x, sigma), x0_base, x0, snr(sigma, "eps"), coef, labels, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return denoise_error(model(x, sigma), x0).mean().item(), denoise_error(
            x0_base, x0
        ).mean().item()


def test_bounded_dislike_training_stays_finite_while_unbounded_grows_far_more():
    bounded_err, base_err = _dislike_only_training(cap=1.5)
    unbounded_err, _ = _dislike_only_training(cap=1e30)
    assert math.isfinite(bounded_err)
    assert bounded_err > base_err  # the push did happen
    assert bounded_err < 2 * 1.5 * base_err
    assert not math.isfinite(unbounded_err) or unbounded_err > 20 * bounded_err


def _one_step(label: float, base_seed: int = 0):
    """Error on fixed noised inputs before and after one SGD step on a single labelled sample."""
    model, base = TinyDenoiser(0), TinyDenoiser(base_seed)
    cfg = PapaConfig(timesteps_per_sample=4)
    x0, _, sigma = _fixed_pairs(4, seed=2)
    x0 = x0[:1].expand(4, D)  # one sample at M = 4 timesteps
    x = noise_x(x0, torch.randn(4, D, generator=torch.Generator().manual_seed(3)), sigma, "eps")
    coef, labels = torch.full((4,), 0.25), torch.full((4,), label)
    with torch.no_grad():
        x0_base = base(x, sigma)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss, stats = papa_loss(model(x, sigma), x0_base, x0, snr(sigma, "eps"), coef, labels, cfg)
    opt.zero_grad()
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    with torch.no_grad():
        after = (coef * denoise_error(model(x, sigma), x0)).sum().item()
    before = (coef * denoise_error(TinyDenoiser(0)(x, sigma), x0)).sum().item()
    return before, after, grads, stats


def test_gradient_step_on_liked_sample_lowers_its_denoise_error():
    before, after, _, _ = _one_step(1.0)
    assert after < before


def test_gradient_step_on_disliked_sample_raises_its_denoise_error_below_cap():
    before, after, _, _ = _one_step(-1.0)
    assert after > before


def test_skipped_sample_contributes_no_gradient():
    _, _, grads, stats = _one_step(0.0, base_seed=5)
    assert all(not g.any() for g in grads)
    assert stats["loss"] == 0.0 and stats["n_like"] == 0 and stats["n_dislike"] == 0


def test_similarity_term_applies_to_likes_only():
    *_, liked = _one_step(1.0, base_seed=5)
    *_, disliked = _one_step(-1.0, base_seed=5)
    assert liked["sim_loss"] > 0 and liked["n_like"] == 1
    assert disliked["sim_loss"] == 0 and disliked["n_dislike"] == 1
    assert liked["loss"] == pytest.approx(liked["like_loss"] + liked["sim_loss"], rel=1e-6)


def test_loss_is_averaged_over_samples_not_pairs():
    """Duplicating every pair (M doubled, coefficients halved) is the same estimator."""
    g = torch.Generator().manual_seed(4)
    x0, pred, base = (torch.randn(4, D, generator=g) for _ in range(3))
    snr_t, coef = torch.rand(4, generator=g), torch.rand(4, generator=g)
    labels = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss2, _ = papa_loss(pred, base, x0, snr_t, coef, labels, PapaConfig(timesteps_per_sample=2))
    dup = [0, 1, 0, 1, 2, 3, 2, 3]
    loss4, _ = papa_loss(
        pred[dup],
        base[dup],
        x0[dup],
        snr_t[dup],
        coef[dup] / 2,
        labels[dup],
        PapaConfig(timesteps_per_sample=4),
    )
    assert loss4.item() == pytest.approx(loss2.item(), rel=1e-6)


def test_papa_loss_rejects_pairs_not_grouped_by_timesteps_per_sample():
    z = torch.zeros(3, D)
    with pytest.raises(ValueError, match="timesteps_per_sample"):
        papa_loss(z, z, z, torch.ones(3), torch.ones(3), torch.ones(3), PapaConfig())


def test_mc_timestep_batch_layout_and_epapa_cut(sigmas):
    cfg = PapaConfig(timesteps_per_sample=3, cut=0.4)
    x0 = torch.randn(5, 2, 2)
    cond = {"c": torch.arange(5.0)[:, None]}
    batch = mc_timestep_batch(
        x0,
        cond,
        torch.tensor([1.0, -1, 1, 0, 1]),
        sigmas,
        "eps",
        cfg,
        torch.Generator().manual_seed(5),
    )
    assert batch["x0"].shape == (15, 2, 2) and batch["noise"].shape == (15, 2, 2)
    torch.testing.assert_close(batch["source"], torch.arange(5).repeat_interleave(3))
    torch.testing.assert_close(batch["x0"], x0[batch["source"]])
    torch.testing.assert_close(batch["cond"]["c"][:, 0], batch["source"].float())
    assert batch["labels"].tolist()[:6] == [1.0, 1.0, 1.0, -1.0, -1.0, -1.0]
    assert batch["idx"].min().item() >= cut_index(T, 0.4)
    torch.testing.assert_close(batch["sigma"], sigmas[batch["idx"]])
    torch.testing.assert_close(batch["snr"], snr(sigmas, "eps")[batch["idx"]])
    w = elbo_weights(sigmas, "eps").double()
    q = timestep_proposal(w * gaussian_denoise_error(snr(sigmas.double(), "eps")), 0.4)
    expected = (w[batch["idx"]] / q[batch["idx"]] / 3).float()
    torch.testing.assert_close(batch["coef"], expected)


def _full_sum_loss(model, base, x0, labels, noise_table, sigmas, cfg):
    """Exact PAPA objective: sums over all T timesteps with fixed noise per timestep."""
    w = elbo_weights(sigmas, "eps").double()
    s = snr(sigmas.double(), "eps")
    q = timestep_proposal(w * gaussian_denoise_error(s), cfg.cut)
    total = 0.0
    for i in range(len(x0)):
        xi = x0[i : i + 1].expand(T, D)
        x = noise_x(xi, noise_table[:, i], sigmas, "eps")
        pred, pred_base = model(x, sigmas), base(x, sigmas)
        err, err_base = denoise_error(pred, xi).double(), denoise_error(pred_base, xi).double()
        sim = denoise_error(pred, pred_base).double() * s
        if labels[i] > 0:
            total += cfg.c_pref * (w * err).sum() + cfg.c_sim * (q * sim).sum()
        else:
            capped = torch.minimum(err, cfg.dislike_cap * err_base)
            total -= cfg.c_pref * cfg.dislike_weight * (w * capped).sum()
    return total.item() / len(x0)


@torch.no_grad()
def test_expected_monte_carlo_papa_loss_equals_full_sum_loss(sigmas):
    model, base = TinyDenoiser(0), TinyDenoiser(7)
    cfg = PapaConfig(timesteps_per_sample=500)
    x0 = torch.randn(2, D, generator=torch.Generator().manual_seed(6))
    labels = torch.tensor([1.0, -1.0])
    noise_table = torch.randn(T, 2, D, generator=torch.Generator().manual_seed(8))
    exact = _full_sum_loss(model, base, x0, labels, noise_table, sigmas, cfg)

    g = torch.Generator().manual_seed(9)
    estimates = []
    for _ in range(20):
        b = mc_timestep_batch(x0, None, labels, sigmas, "eps", cfg, g)
        x = noise_x(b["x0"], noise_table[b["idx"], b["source"]], b["sigma"], "eps")
        loss, _ = papa_loss(
            model(x, b["sigma"]),
            base(x, b["sigma"]),
            b["x0"],
            b["snr"],
            b["coef"],
            b["labels"],
            cfg,
        )
        estimates.append(loss.item())
    est = torch.tensor(estimates, dtype=torch.float64)
    mean, se = est.mean().item(), (est.std() / math.sqrt(len(est))).item()

    assert abs(mean - exact) < 4 * se
    assert se < 0.05 * abs(exact)  # power: a 20 % bias would fail


def test_kto_loss_falls_when_model_improves_liked_and_worsens_disliked():
    err_ref = torch.tensor([1.0, 1.0, 1.0, 1.0])
    labels = torch.tensor([1.0, -1.0, 1.0, 0.0])
    at_ref = diffusion_kto_loss(err_ref.clone(), err_ref, labels, beta=10.0)
    improved = diffusion_kto_loss(torch.tensor([0.9, 1.1, 0.9, 5.0]), err_ref, labels, beta=10.0)
    assert at_ref.item() == pytest.approx(0.5)
    assert improved.item() < at_ref.item()


def test_kto_loss_ignores_skipped_samples():
    err_ref = torch.ones(3)
    labels = torch.tensor([1.0, -1.0, 0.0])
    a = diffusion_kto_loss(torch.tensor([0.9, 1.1, 0.0]), err_ref, labels, beta=10.0)
    b = diffusion_kto_loss(torch.tensor([0.9, 1.1, 9.0]), err_ref, labels, beta=10.0)
    assert a.item() == b.item()


def test_dpo_loss_is_log2_at_reference_and_falls_when_preferred_error_drops():
    ref = torch.tensor([0.5, 0.7])
    assert diffusion_dpo_loss(ref, ref, ref, ref, beta=100.0).item() == pytest.approx(math.log(2))
    better = diffusion_dpo_loss(ref - 0.01, ref, ref, ref, beta=100.0)
    assert better.item() < math.log(2)


def test_d3po_loss_prefers_higher_likelihood_of_winner_and_clips_ratios():
    zero = torch.zeros(3)
    assert d3po_loss(zero, zero, zero, zero).item() == pytest.approx(math.log(2))
    logp_w = torch.full((3,), 0.05, requires_grad=True)
    assert d3po_loss(logp_w, zero, zero, zero).item() < math.log(2)
    far = torch.full((3,), 5.0, requires_grad=True)
    clipped = d3po_loss(far, zero, zero, zero, ratio_clip=0.1)
    clipped.backward()
    expected = -torch.nn.functional.logsigmoid(torch.tensor(0.1 * math.log(1.1))).item()
    assert clipped.item() == pytest.approx(expected)
    assert not far.grad.any()


def test_gaussian_step_logprob_matches_torch_normal():
    g = torch.Generator().manual_seed(10)
    mean, x = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    expected = torch.distributions.Normal(mean, 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_step_logprob(x, mean, 0.3), expected)


def test_pairs_are_likes_times_dislikes_within_a_round():
    labels = torch.tensor([1.0, -1.0, 0.0, -1.0, 1.0])
    assert pair_likes_dislikes(labels) == [(0, 1), (0, 3), (4, 1), (4, 3)]
    rounds = torch.tensor([0, 0, 0, 1, 1])
    assert pair_likes_dislikes(labels, rounds) == [(0, 1), (4, 3)]


def test_snr_floor_raises_the_weight_of_the_noisy_timesteps_only(sigmas):
    """weighting "snr" with snr_floor f: coef = clamp(SNR_t, f, gamma) / M, so the noisy
    timesteps (SNR_t < f) weigh f instead of almost nothing, and the rest are unchanged."""
    x0, labels = torch.randn(6, 2, 2), torch.tensor([1.0, -1, 1, -1, 1, -1])
    plain, floored = PapaConfig(weighting="snr"), PapaConfig(weighting="snr", snr_floor=0.05)
    a = mc_timestep_batch(x0, None, labels, sigmas, "v", plain, torch.Generator().manual_seed(3))
    b = mc_timestep_batch(x0, None, labels, sigmas, "v", floored, torch.Generator().manual_seed(3))
    assert torch.equal(a["idx"], b["idx"])  # same draws
    m = plain.timesteps_per_sample
    noisy = a["snr"] < 0.05
    assert bool(noisy.any()) and bool((~noisy).any())
    torch.testing.assert_close(b["coef"][noisy], torch.full_like(b["coef"][noisy], 0.05 / m))
    torch.testing.assert_close(b["coef"][~noisy], a["coef"][~noisy])


def test_snr_floor_is_not_applied_to_epsilon_models(sigmas):
    """An epsilon model's x0 moves by sigma times its output: the floor is for v models only."""
    x0, labels = torch.randn(6, 2, 2), torch.tensor([1.0, -1, 1, -1, 1, -1])
    plain, floored = PapaConfig(weighting="snr"), PapaConfig(weighting="snr", snr_floor=0.05)
    a = mc_timestep_batch(x0, None, labels, sigmas, "eps", plain, torch.Generator().manual_seed(3))
    b = mc_timestep_batch(
        x0, None, labels, sigmas, "eps", floored, torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(b["coef"], a["coef"])


def test_snr_floor_must_lie_between_zero_and_gamma():
    with pytest.raises(ValueError, match="snr_floor"):
        PapaConfig(weighting="snr", snr_floor=-0.1)
    with pytest.raises(ValueError, match="snr_floor"):
        PapaConfig(weighting="snr", snr_floor=6.0, snr_gamma=5.0)
