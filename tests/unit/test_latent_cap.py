"""The cap on the latents one picker request may hold (comfy_papa.profile.limits): refused with a
clear message before anything is written, by the store (every backend's way into pending/)."""

from __future__ import annotations

import pytest
import torch

from comfy_papa.profile import limits
from comfy_papa.profile.limits import check_request_latents
from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import Profile

EACH = 4 * 8 * 8 * 4  # one (4, 8, 8) float32 latent: 1 KiB


def _files(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_the_default_cap_fits_64_candidates_of_a_4096_sd_image_and_no_more():
    assert limits.MAX_REQUEST_LATENT_BYTES == 256 * 2**20
    sdxl_4096 = torch.empty(64, 4, 512, 512, device="meta")  # shape and dtype only
    check_request_latents(sdxl_4096, "test")
    with pytest.raises(ProfileError, match=r"at most 64 at this size"):
        check_request_latents(torch.empty(65, 4, 512, 512, device="meta"), "test")


def test_over_the_cap_the_message_says_what_and_what_to_do(monkeypatch):
    monkeypatch.setattr(limits, "MAX_REQUEST_LATENT_BYTES", 2 * EACH)
    check_request_latents(torch.zeros(2, 4, 8, 8), "PAPA Preference Picker")  # at the cap: ok
    with pytest.raises(ProfileError) as e:
        check_request_latents(torch.zeros(3, 4, 8, 8), "PAPA Preference Picker")
    msg = str(e.value)
    for needle in (
        "PAPA Preference Picker",
        "the 3 candidates' latents take 3.0 KiB (3 x 1.0 KiB, each (4, 8, 8) float32)",
        "at most 2.0 KiB",
        "Nothing was recorded",
        "at most 2 at this size",
        "smaller image size",
    ):
        assert needle in msg, msg
    monkeypatch.setattr(limits, "MAX_REQUEST_LATENT_BYTES", EACH // 2)
    with pytest.raises(ProfileError, match="Even one candidate is over the cap"):
        check_request_latents(torch.zeros(1, 4, 8, 8), "x")


def test_the_environment_replaces_the_cap_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv(limits.ENV, str(EACH))
    check_request_latents(torch.zeros(1, 4, 8, 8), "x")
    with pytest.raises(ProfileError, match="at most 1 at this size"):
        check_request_latents(torch.zeros(2, 4, 8, 8), "x")
    for bad in ("-1", "0", "lots", "1.5"):
        monkeypatch.setenv(limits.ENV, bad)
        with pytest.raises(ProfileError, match="COMFY_PAPA_MAX_REQUEST_LATENT_BYTES"):
            check_request_latents(torch.zeros(1, 4, 8, 8), "x")
    monkeypatch.setenv(limits.ENV, " ")
    assert limits.max_request_latent_bytes() == limits.MAX_REQUEST_LATENT_BYTES


def test_the_store_refuses_latents_over_the_cap_and_writes_nothing(tmp_path, monkeypatch):
    profile = Profile.open(tmp_path, "capped", create=True)
    profile.record_feedback("req1", 1, ["a", "b"], [1.0, -1.0], torch.zeros(2, 4, 8, 8))
    before = _files(profile.dir)
    monkeypatch.setattr(limits, "MAX_REQUEST_LATENT_BYTES", 2 * EACH)
    with pytest.raises(ProfileError, match=r"Profile 'capped'.*3 candidates.*Nothing was recorded"):
        profile.record_feedback(
            "req2", 1, ["a", "b", "c"], [1.0, -1.0, 0.0], torch.zeros(3, 4, 8, 8)
        )
    assert _files(profile.dir) == before  # no pending file, no history line
    again = Profile.open(tmp_path, "capped")
    assert [p.request_id for p in again.pending()] == ["req1"]
    assert len(again.history()) == 2
    # Within the cap the same profile records on (fewer candidates, as the message says).
    again.record_feedback("req2", 1, ["a", "b"], [1.0, 0.0], torch.zeros(2, 4, 8, 8))
    assert [p.request_id for p in Profile.open(tmp_path, "capped").pending()] == ["req1", "req2"]
