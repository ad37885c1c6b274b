"""The diffusers backend's labels go through the same latent cap as the picker
(comfy_papa.profile.limits): over it, give_labels refuses, writes nothing and keeps the
candidates, so fewer of them can be labelled."""

from __future__ import annotations

import pytest
from diffusers import DDIMScheduler, UNet2DModel

from comfy_papa.diffusers import PapaSession
from comfy_papa.profile import limits
from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import Profile


def test_give_labels_over_the_cap_is_refused_and_nothing_is_written(
    tmp_path, tiny_digits_dir, monkeypatch
):
    unet = UNet2DModel.from_pretrained(tiny_digits_dir, subfolder="unet")
    sched = DDIMScheduler.from_pretrained(tiny_digits_dir, subfolder="scheduler")
    session = PapaSession.open(tmp_path, "capped", unet, sched, rank=4, alpha=4.0)
    cand = session.sample(3, seed=1, steps=2)
    each = cand.latents[0].numel() * cand.latents.element_size()
    monkeypatch.setattr(limits, "MAX_REQUEST_LATENT_BYTES", 2 * each)
    with pytest.raises(ProfileError, match=r"3 candidates.*Nothing was recorded.*at most 2"):
        session.give_labels(cand.ids, [1, -1, 0])
    profile = Profile.open(tmp_path, "capped", create=False)
    assert profile.history() == [] and profile.pending() == []
    session.give_labels(cand.ids[:2], [1, -1])  # the candidates were kept: fewer of them fit
    assert len(Profile.open(tmp_path, "capped", create=False).history()) == 2
