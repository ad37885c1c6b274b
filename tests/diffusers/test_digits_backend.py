"""The digits benchmark's diffusers backend (bench/digits_diffusers.py) runs one round per method:
candidates -> feedback -> evaluate, on the tiny diffusers digits model. PAPA and EPAPA change the
model; Best-of-N leaves it alone."""

from __future__ import annotations

import sys

import pytest
import torch

from harness.paths import REPO

sys.path.insert(0, str(REPO / "bench"))

from digits_diffusers import DiffusersDigits  # noqa: E402

FINETUNE = dict(
    steps=2,
    learning_rate=1e-3,
    rank=4,
    alpha=4.0,
    c_pref=0.1,
    c_sim=0.009,
    batch_size=4,
    timesteps_per_sample=2,
    cut=0.4,
)


@pytest.mark.parametrize("method", ["bestofn", "papa", "epapa"])
def test_one_round_trains_exactly_the_training_methods(method, tmp_path, tiny_digits_dir):
    settings = dict(
        steps=4,
        sampler="euler",
        scheduler="normal",
        finetune=FINETUNE,
        diffusers_model=str(tiny_digits_dir),
    )
    backend = DiffusersDigits(method, 0, tmp_path, "cpu", settings)
    before = backend.evaluate(4, seed=123)
    gray = backend.candidates(4, seed=1)
    stats = backend.feedback([1, -1, 1, -1])
    after = backend.evaluate(4, seed=123)

    for images in (before, gray, after):
        assert images.shape == (4, 16, 16) and images.dtype == torch.float32
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert set(stats) >= {"seconds", "passes"}
    if method == "bestofn":
        assert stats == {"seconds": 0.0, "passes": 0}
        assert backend.session.profile.round == 0
        torch.testing.assert_close(before, after, rtol=0, atol=0)
    else:
        assert stats["passes"] > 0 and stats["seconds"] > 0
        assert backend.session.profile.round == 1
        assert (after - before).abs().max() > 1e-4


def test_baselines_are_refused_with_the_backend_to_use(tmp_path, tiny_digits_dir):
    with pytest.raises(ValueError, match="--backend comfy"):
        DiffusersDigits("d3po", 0, tmp_path, "cpu", {"diffusers_model": str(tiny_digits_dir)})
