"""The backend-neutral round (core.round) without any host: seeds, replay weighting, the loop."""

import pytest
import torch

from comfy_papa.core.objective import PapaConfig, mc_timestep_batch, papa_loss, stratified_timesteps
from comfy_papa.core.replay import ReplayBuffer
from comfy_papa.core.round import (
    AdapterCoverageError,
    RoundLoop,
    adapter_groups,
    density_weights,
    dislike_scale,
    replay_weights,
    round_seed,
    sample_indices,
)
from comfy_papa.core.schedule import discrete_sigmas_from_betas
from comfy_papa.core.settings import FinetuneSettings

SIGMAS = discrete_sigmas_from_betas(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))


def test_round_seed_fits_a_generator_for_every_widget_seed():
    for seed in (0, 1, 2**48 - 1, 2**63, 2**64 - 1):
        for r in (1, 2, 10_000):
            s = round_seed(seed, r)
            assert 0 <= s < 2**63
            torch.Generator().manual_seed(s)
    assert round_seed(5, 1) == round_seed(5, 1) != round_seed(5, 2) != round_seed(6, 2)


def test_near_copies_share_one_unit_of_density_weight():
    g = torch.Generator().manual_seed(0)
    distinct = torch.randn(6, 1, 8, 8, generator=g)
    copies = distinct[:1] + 0.01 * torch.randn(6, 1, 8, 8, generator=g)
    w = density_weights(torch.cat([distinct, copies]))
    assert abs(float(w.mean()) - 1) < 1e-5
    # The six near-copies of sample 0 together weigh about what one distinct sample weighs.
    assert float(w[6:].sum() + w[0]) < 2.5 * float(w[1:6].mean())
    assert torch.equal(density_weights(torch.randn(2, 3)), torch.ones(2))


def _replay(labels, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    r = ReplayBuffer()
    r.add(
        torch.randn(n, 1, 4, 4, generator=g),
        torch.tensor(labels, dtype=torch.float32),
        torch.ones(n, dtype=torch.long),
        [f"c{i}" for i in range(n)],
        {"group": torch.zeros(n, dtype=torch.long)},
    )
    return r


def test_replay_weights_skip_nothing_labelled_and_keep_or_balance_group_shares():
    r = _replay([1, 0, -1, -1, -1, -1, 0, 1])
    for diversity in (False, True):
        w = replay_weights(r, diversity)
        assert torch.all(w[r.labels == 0] == 0)
        assert torch.all(w[r.labels != 0] > 0)
        assert abs(float(w[r.labels > 0].sum()) - 2) < 1e-4
        assert abs(float(w[r.labels < 0].sum()) - 4) < 1e-4
        wb = replay_weights(r, diversity, balance=True)
        assert abs(float(wb[r.labels > 0].sum() - wb[r.labels < 0].sum())) < 1e-4
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        idx = sample_indices(replay_weights(r, True), 4, g)
        assert len(set(idx.tolist())) == 4 and all(r.labels[i] != 0 for i in idx)


def test_dislikes_train_only_once_there_is_a_like_and_do_not_fade_as_likes_grow():
    assert dislike_scale(torch.tensor([-1.0, -1.0, 0.0])) == 0.0
    assert dislike_scale(torch.tensor([1.0, -1.0, -1.0, -1.0])) == 1.0
    assert dislike_scale(torch.tensor([1.0, 1.0, 1.0, -1.0])) == 1.0
    assert dislike_scale(torch.tensor([1.0] * 40 + [-1.0])) == 1.0
    assert dislike_scale(torch.tensor([1.0, -1.0])) == 1.0
    assert dislike_scale(torch.tensor([-1.0, -1.0])) == 0.0


def test_stratified_timesteps_cover_every_stratum_above_the_cut():
    g = torch.Generator().manual_seed(0)
    idx = stratified_timesteps(1000, 0.4, 50, 4, g)
    assert idx.shape == (50, 4) and int(idx.min()) >= 400 and int(idx.max()) <= 999
    strata = ((idx - 400) * 4 // 600).sort(dim=1).values
    assert torch.equal(strata, torch.arange(4).expand(50, 4))


def test_snr_weighting_blends_each_like_with_the_base_prediction():
    """Per pair, like + similarity terms share one weight: the optimum is the fixed blend
    (c_pref x0 + c_sim x0_base) / (c_pref + c_sim), at every noise level."""
    cfg = PapaConfig(weighting="snr", c_pref=1.0, c_sim=0.25, timesteps_per_sample=3)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 1, 4, 4, generator=g)
    b = mc_timestep_batch(x0, None, torch.ones(2), SIGMAS, "eps", cfg, g)
    base = torch.randn_like(b["x0"])
    pred = ((1.0 * b["x0"] + 0.25 * base) / 1.25).requires_grad_(True)
    loss, _ = papa_loss(pred, base, b["x0"], b["snr"], b["coef"], b["labels"], cfg, b["anchor"])
    loss.backward()
    assert float(pred.grad.abs().max()) < 1e-6
    assert torch.allclose(b["coef"], b["snr"].clamp(max=5.0) / 3)


def test_trust_region_holds_a_round_at_its_start_without_likes():
    """A round whose replay has only dislikes (balance): the dislike term is off and the trust
    region's gradient is zero at the previous round, so the adapter does not move."""
    cfg = PapaConfig(weighting="snr", c_trust=0.5, timesteps_per_sample=2)
    x0 = torch.randn(3, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    b = mc_timestep_batch(x0, None, -torch.ones(3), SIGMAS, "eps", cfg, g)
    ref = torch.randn_like(b["x0"])
    pred = ref.clone().requires_grad_(True)
    loss, stats = papa_loss(
        pred, torch.randn_like(ref), b["x0"], b["snr"], b["coef"], b["labels"], cfg,
        b["anchor"], x0_ref=ref, dislike_scale=0.0,
    )  # fmt: skip
    loss.backward()
    assert float(pred.grad.abs().max()) == 0.0 and stats["trust_loss"] == 0.0


class _Toy(torch.nn.Module):
    """x0_hat = x / (1 + sigma^2) + adapter offset: a 'denoiser' with one trainable bias."""

    def __init__(self):
        super().__init__()
        self.offset = torch.nn.Parameter(torch.zeros(1, 1, 4, 4))

    def predict(self, b: dict, adapter_on: bool) -> torch.Tensor:
        s = b["sigma"].reshape(-1, 1, 1, 1).float()
        x = b["x0"] + s * b["noise"]
        out = x / (1 + s * s)
        return out + self.offset if adapter_on else out


def _loop(toy, replay, **kw):
    settings = FinetuneSettings(**{"steps": 30, "learning_rate": 0.05, **kw})
    job = RoundLoop(dict(toy.named_parameters()), replay, settings, {}, round_seed(0, 1))
    x0 = replay.latents
    job.train(toy.predict, x0, replay.labels, replay.cond["group"], SIGMAS, "eps", "cpu")
    return job


def test_round_loop_pulls_the_model_towards_the_likes():
    replay = _replay([1, 1, 1, -1, -1])
    replay.latents[replay.labels > 0] += 2.0  # likes are brighter
    toy = _Toy()
    job = _loop(toy, replay)
    assert len(job.losses) == 30 and job.skipped_steps == 0 and job.passes == 30 * 5 * 2
    assert float(toy.offset.detach().mean()) > 0.1


def test_round_loop_without_likes_leaves_the_model_alone():
    toy = _Toy()
    job = _loop(toy, _replay([-1, -1, -1, 0]))
    assert job.losses and float(toy.offset.detach().abs().max()) == 0.0


def test_paired_batches_noise_each_dislike_like_its_like():
    """Balanced, paired steps: half likes, half dislikes, pair i sharing timesteps and noise."""
    replay = _replay([1, 1, 1, -1, -1, -1, -1, -1, 0])
    settings = FinetuneSettings(batch_size=6, timesteps_per_sample=2)
    job = RoundLoop(dict(_Toy().named_parameters()), replay, settings, {}, round_seed(0, 1))
    g = torch.Generator().manual_seed(0)
    b = job.make_batch(g, replay.latents, replay.labels, replay.cond["group"], SIGMAS, "eps", "cpu")
    labels = b["labels"].reshape(6, 2)[:, 0]
    assert labels.tolist() == [1, 1, 1, -1, -1, -1]
    noise, idx = b["noise"].reshape(6, 2, -1), b["idx"].reshape(6, 2)
    assert torch.equal(noise[:3], noise[3:]) and torch.equal(idx[:3], idx[3:])
    assert not torch.equal(noise[0], noise[1])


class _ToyLora(torch.nn.Module):
    """Two LoRA-style adapters ("a", "b") adding up @ down to the toy denoiser's output, started
    as peft starts them (up = 0, so down's gradient is zero at the first step). `skip` names the
    adapters the 'host' leaves out of the forward, as a host that drops a weight wrapper would."""

    def __init__(self, skip=()):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.skip = set(skip)
        for name in ("a", "b"):
            m = torch.nn.Module()
            m.lora_up = torch.nn.Linear(2, 16, bias=False)
            m.lora_down = torch.nn.Linear(1, 2, bias=False)
            with torch.no_grad():
                m.lora_up.weight.zero_()
                m.lora_down.weight.copy_(torch.randn(2, 1, generator=g))
            self.add_module(name, m)

    def params(self):
        return {
            f"{n}.{f}.weight": getattr(getattr(self, n), f).weight
            for n in ("a", "b")
            for f in ("lora_up", "lora_down")
        }

    def predict(self, b: dict, adapter_on: bool) -> torch.Tensor:
        s = b["sigma"].reshape(-1, 1, 1, 1).float()
        out = (b["x0"] + s * b["noise"]) / (1 + s * s)
        if adapter_on:
            for n in ("a", "b"):
                if n not in self.skip:
                    m = getattr(self, n)
                    out = out + (m.lora_up.weight @ m.lora_down.weight).reshape(1, 1, 4, 4)
        return out


def _lora_round(toy, labels, steps):
    replay = _replay(labels)
    settings = FinetuneSettings(steps=steps, learning_rate=0.05)
    job = RoundLoop(toy.params(), replay, settings, {}, round_seed(0, 1))
    job.train(
        toy.predict, replay.latents, replay.labels, replay.cond["group"], SIGMAS, "eps", "cpu"
    )
    return job


def test_adapter_groups_count_both_factors_of_a_module_as_one():
    names = ["x.lora_up.weight", "x.lora_down.weight", "y.lora_up.weight", "offset"]
    assert adapter_groups(names) == {"x": [0, 1], "y": [2], "offset": [3]}


def test_a_one_step_round_of_fresh_adapters_counts_as_covered():
    """At step 1 a fresh adapter's down factor has a zero gradient (up is zero): coverage is
    counted per module, so this is not mistaken for a skipped adapter."""
    toy = _ToyLora()
    job = _lora_round(toy, [1, -1, 1], steps=1)
    assert float(toy.a.lora_down.weight.grad.abs().max()) == 0.0
    assert job.untrained_modules() == []


class _Unapplied(RoundLoop):
    """A backend that knows which modules it ran (as the ComfyUI host counts wrapper calls)."""

    def __init__(self, *args, ran: set[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.ran = ran

    def module_applied(self, name: str) -> bool:
        return name in self.ran


def _round_of(cls, toy, labels, steps, **kw):
    replay = _replay(labels)
    settings = FinetuneSettings(steps=steps, learning_rate=0.05)
    job = cls(toy.params(), replay, settings, {}, round_seed(0, 1), **kw)
    job.train(
        toy.predict, replay.latents, replay.labels, replay.cond["group"], SIGMAS, "eps", "cpu"
    )
    return job


def test_an_adapter_the_model_never_ran_fails_the_round_loudly():
    toy = _ToyLora(skip={"b"})
    with pytest.raises(AdapterCoverageError, match=r"1 of 2 adapter modules .*\(b\)"):
        _round_of(_Unapplied, toy, [1, -1, 1], steps=3, ran={"a"})


def test_an_applied_adapter_without_gradient_is_idle_not_a_failure():
    """A layer that ran but does not affect the prediction (the digits model's cross-attention
    to its all-zero context) gets no gradient: listed as idle, the round succeeds."""
    toy = _ToyLora(skip={"b"})
    job = _round_of(_Unapplied, toy, [1, -1, 1], steps=3, ran={"a", "b"})
    assert job.idle_modules == ["b"]
    plain = _lora_round(_ToyLora(skip={"b"}), [1, -1, 1], steps=3)
    assert plain.idle_modules == ["b"]  # the default backend counts every module as applied


def test_a_round_without_likes_trains_nothing_and_is_not_a_coverage_failure():
    job = _lora_round(_ToyLora(), [-1, -1, 0], steps=2)
    assert job.losses and len(job.untrained_modules()) == 2
