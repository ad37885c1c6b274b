"""The digits benchmark's diffusers backend (bench/digits_diffusers.py) runs one round per method:
candidates -> feedback -> evaluate, on the tiny diffusers digits model. PAPA, EPAPA and the
baselines (D3PO, Diffusion-KTO: bench/digits_baselines.py's rounds through PapaSession) change the
model; Best-of-N leaves it alone. And `bench/digits.py --backend diffusers --methods d3po,kto`
runs end to end."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from bench.digits_diffusers import DiffusersDigits
from harness.paths import REPO, VENV_PYTHON

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


@pytest.mark.parametrize("method", ["bestofn", "papa", "epapa", "d3po", "kto"])
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


def test_unknown_methods_are_refused(tmp_path, tiny_digits_dir):
    with pytest.raises(ValueError, match="diffusers backend runs"):
        DiffusersDigits("dpo", 0, tmp_path, "cpu", {"diffusers_model": str(tiny_digits_dir)})


def test_d3po_waits_for_a_pair_from_one_round(tmp_path, tiny_digits_dir):
    settings = dict(steps=4, finetune=FINETUNE, diffusers_model=str(tiny_digits_dir))
    backend = DiffusersDigits("d3po", 0, tmp_path, "cpu", settings)
    backend.candidates(4, seed=1)
    assert backend.feedback([1, 1, 0, 1])["skipped"] == "no like/dislike pair yet"
    backend.candidates(4, seed=2)
    assert backend.feedback([-1, 0, 0, 0])["passes"] > 0  # the pair spans the untrained round 1
    assert backend.session.profile.round == 1


def test_digits_bench_runs_the_baselines_on_diffusers(tmp_path, tiny_digits_dir):
    """The smoke run of `bench/digits.py --backend diffusers --methods d3po,kto`: two rounds of
    each baseline in worker processes, merged into one result file."""
    out = tmp_path / "digits.json"
    cmd = [str(VENV_PYTHON), str(REPO / "bench" / "digits.py"), "--backend", "diffusers"]
    cmd += ["--methods", "d3po,kto", "--rounds", "2", "--seeds", "1", "--candidates", "6"]
    cmd += ["--eval-samples", "8", "--eval-every", "1", "--steps", "4", "--threads", "1"]
    cmd += ["--jobs", "2", "--set", "steps=2", "--out", str(out)]
    env = dict(os.environ, PAPA_DIGITS_DIFFUSERS_MODEL=str(tiny_digits_dir))
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]

    methods = json.loads(out.read_text())["methods"]
    assert set(methods) == {"d3po", "kto"}
    for name, r in methods.items():
        assert r["errors"] == [], (name, run.stderr[-4000:])
        assert r["rounds_completed"] == [2], (name, run.stderr[-4000:])
        rounds = r["seeds"][0]["rounds"]
        assert sum(x["passes"] for x in rounds) > 0, name  # trained, not only skipped
        assert r["labels"] == [0, 6, 12] and r["n_seeds"] == [1, 1, 1], name
